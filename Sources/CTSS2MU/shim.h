#include <tss2/tss2_tpm2_types.h>
#include <tss2/tss2_mu.h>
