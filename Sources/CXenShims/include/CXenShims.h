/// C shims for libxenctrl / libxenforeignmemory / libxenguest / libxenstore: macros (hypercall
/// buffers, constants) and structures Swift cannot use directly. Every function returns -1 (or
/// NULL) with errno set on failure, like the Xen call it wraps.
#ifndef PALM_CXEN_SHIMS_H
#define PALM_CXEN_SHIMS_H
#include <stdint.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>

/// The three control handles of one agent.
typedef struct palm_xen_handles {
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    struct xs_handle *xsh;
} palm_xen_handles;
/// Opens libxenctrl, libxenforeignmemory and libxenstore; on failure closes what was opened and
/// returns -1 with errno and the failing call's name in *failed.
int palm_xen_open(palm_xen_handles *h, const char **failed);
void palm_xen_close(palm_xen_handles *h);

/// Xen's page size in bytes (XC_PAGE_SIZE).
unsigned long palm_xc_page_size(void);

/// One domain, flattened from xc_domaininfo_t.
typedef struct palm_xen_domain {
    uint32_t domid;
    uint32_t flags;
    uint64_t tot_pages;
    uint64_t max_pages;
    uint32_t online_vcpus;
    int hvm, paused, shutdown, shutdown_reason, dying;
    uint8_t handle[16];
    uint64_t cpu_time;   /* ns the domain's vCPUs have run; 0: it never ran */
} palm_xen_domain;

/// Domains from `first` on, at most `max`; returns how many (xc_domain_getinfolist).
/// pipe2(O_CLOEXEC): both ends close-on-exec from birth, so no child forked meanwhile inherits them.
int palm_pipe_cloexec(int fds[2]);

int palm_xen_domains(xc_interface *xch, uint32_t first, palm_xen_domain *out, unsigned int max);

/// The page types of `num` guest frames, in place (XEN_DOMCTL_getpageframeinfo3).
int palm_xen_pfn_types(xc_interface *xch, uint32_t domid, unsigned int num, xen_pfn_t *pfns);
/// XEN_DOMCTL_PFINFO_XTAB / _BROKEN / _LTAB_MASK.
uint32_t palm_xen_pfinfo_xtab(void);
uint32_t palm_xen_pfinfo_broken(void);
uint32_t palm_xen_pfinfo_mask(void);
/// SHUTDOWN_suspend.
int palm_xen_shutdown_suspend(void);

/// Log-dirty tracking of one domain with its hypercall bitmap buffer.
typedef struct palm_xen_logdirty palm_xen_logdirty;
/// Enables log-dirty mode (turning a stale one off first) for a p2m of `pages` frames.
palm_xen_logdirty *palm_xen_logdirty_enable(xc_interface *xch, uint32_t domid, unsigned long pages);
/// Reads and clears the dirty bitmap (XEN_DOMCTL_SHADOW_OP_CLEAN) into `words` (pages/64 rounded up).
int palm_xen_logdirty_clean(palm_xen_logdirty *ld, uint64_t *words, size_t nwords);
/// Counts the pages dirtied since the last clean without clearing anything
/// (XEN_DOMCTL_SHADOW_OP_PEEK without a bitmap: Xen's dirty_count).
int palm_xen_logdirty_peek(palm_xen_logdirty *ld, uint32_t *dirty_count);
/// Turns log-dirty off and frees the buffer.
int palm_xen_logdirty_disable(palm_xen_logdirty *ld);

/// The domain's CPUID and MSR policy in the migration stream's serialised form (malloc'd arrays
/// of xen_cpuid_leaf_t and xen_msr_entry_t; the caller frees them).
int palm_xen_cpu_policy(xc_interface *xch, uint32_t domid, void **leaves, uint32_t *leaves_bytes,
                        void **msrs, uint32_t *msrs_bytes);

/// Xen's version as "major.minor" + extraversion into buf.
int palm_xen_version(xc_interface *xch, char *buf, size_t len);

/// Host memory: free and total bytes (xc_physinfo).
int palm_xen_physinfo(xc_interface *xch, uint64_t *free_bytes, uint64_t *total_bytes);

/// A domain's CPU cap in percent of one CPU (0 = no cap), under credit2 or credit.
int palm_xen_set_cap(xc_interface *xch, uint32_t domid, unsigned int cap);
int palm_xen_get_cap(xc_interface *xch, uint32_t domid, unsigned int *cap);

/// libxl (libxenlight), in-process: a context whose log lines (warnings and errors, or details
/// when `verbose`) go to `log_fd`. Every call returns 0 or a libxl error code (negative).
typedef struct palm_libxl palm_libxl;
/// Returned by palm_libxl_restore for a configuration libxl cannot parse.
#define PALM_LIBXL_BAD_CONFIG (-1000)
palm_libxl *palm_libxl_open(int log_fd, int verbose);
void palm_libxl_close(palm_libxl *h);
/// The domain's configuration as libxl JSON (what `xl list -l` prints under "config"); free with
/// palm_libxl_free.
int palm_libxl_config_json(palm_libxl *h, uint32_t domid, char **json);
/// Builds a domain from the libxl migration stream (v2, from the "LibxlFmt" header on) read from
/// `restore_fd`, configured by `config_json`; blocks until the stream ends. The domain is left
/// paused (libxl_domain_create_restore, as xl's receiver calls it).
int palm_libxl_restore(palm_libxl *h, const char *config_json, int restore_fd, uint32_t *domid);
int palm_libxl_rename(palm_libxl *h, uint32_t domid, const char *new_name);
int palm_libxl_destroy(palm_libxl *h, uint32_t domid);
int palm_libxl_unpause(palm_libxl *h, uint32_t domid);
void palm_libxl_free(void *p);

/// A domain's life after the move, as xl's per-domain process keeps it (one context, one thread
/// polling palm_libxl_next_event; watches may be added from other threads).
enum { PALM_LIBXL_EVENT_OTHER = 0, PALM_LIBXL_EVENT_SHUTDOWN = 1, PALM_LIBXL_EVENT_DEATH = 2 };
/// Reports the domain's next shutdown (once per watch: re-watch to hear of another) and its death.
int palm_libxl_watch_death(palm_libxl *h, uint32_t domid, void **watch);
void palm_libxl_unwatch_death(palm_libxl *h, void *watch);
/// The next event of a watch — its kind, domain and (for a shutdown) libxl's reason code — waiting
/// at most timeout_ms; PALM_LIBXL_NO_EVENT when none came.
#define PALM_LIBXL_NO_EVENT 1
int palm_libxl_next_event(palm_libxl *h, int timeout_ms, int *kind, uint32_t *domid, int *reason);
/// libxl's name of a shutdown reason ("poweroff", "reboot", "suspend", "crash", "watchdog", "soft_reset").
const char *palm_libxl_reason_name(int reason);
/// The actions the domain's stored configuration names for each shutdown reason ("destroy",
/// "restart", "rename_restart", "preserve", "coredump_destroy", "coredump_restart", "soft_reset").
int palm_libxl_shutdown_actions(palm_libxl *h, uint32_t domid, const char **poweroff, const char **reboot,
                                const char **watchdog, const char **crash, const char **soft_reset);
/// Creates and starts a domain from libxl JSON under a new domain id (libxl_domain_create_new).
int palm_libxl_create(palm_libxl *h, const char *config_json, uint32_t *domid);
/// Keeps a shut-down domain under NAME+suffix with a new UUID (libxl_domain_preserve).
int palm_libxl_preserve(palm_libxl *h, uint32_t domid, const char *name_suffix);
int palm_libxl_core_dump(palm_libxl *h, uint32_t domid, const char *path);
/// Marks a domain as kept by palm (libxl userdata "palm", removed with the domain), and lists the
/// marked domains (free *domids with palm_libxl_free).
int palm_libxl_set_kept(palm_libxl *h, uint32_t domid, const char *note);
int palm_libxl_kept_domains(palm_libxl *h, uint32_t **domids, int *count);
#endif
