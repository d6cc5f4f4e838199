/// C shims for libxenctrl / libxenforeignmemory: constants defined as macros.
#ifndef PALM_CXEN_SHIMS_H
#define PALM_CXEN_SHIMS_H
#include <xenctrl.h>
#include <xenforeignmemory.h>

/// Xen's page size in bytes (XC_PAGE_SIZE).
unsigned long palm_xc_page_size(void);
/// The shadow-control operation that reads and clears the log-dirty bitmap.
unsigned int palm_xen_shadow_op_clean(void);
#endif
