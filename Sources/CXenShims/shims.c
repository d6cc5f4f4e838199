#include "CXenShims.h"

unsigned long palm_xc_page_size(void) { return XC_PAGE_SIZE; }
unsigned int palm_xen_shadow_op_clean(void) { return XEN_DOMCTL_SHADOW_OP_CLEAN; }
