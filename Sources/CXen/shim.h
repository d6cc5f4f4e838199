#include <xenctrl.h>
#include <xenforeignmemory.h>
