#define _GNU_SOURCE
#include "CXenShims.h"
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exported by libxenctrl 4.17 but declared only in its private header. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

unsigned long palm_xc_page_size(void) { return XC_PAGE_SIZE; }

int palm_xen_open(palm_xen_handles *h, const char **failed)
{
    memset(h, 0, sizeof(*h));
    h->xch = xc_interface_open(NULL, NULL, 0);
    if (!h->xch) { *failed = "xc_interface_open (is this dom0 with xen-privcmd loaded?)"; return -1; }
    h->fmem = xenforeignmemory_open(NULL, 0);
    if (!h->fmem) { int e = errno; xc_interface_close(h->xch); errno = e; *failed = "xenforeignmemory_open"; return -1; }
    h->xsh = xs_open(0);
    if (!h->xsh) {
        int e = errno;
        xenforeignmemory_close(h->fmem);
        xc_interface_close(h->xch);
        errno = e;
        *failed = "xs_open (is xenstored running?)";
        return -1;
    }
    return 0;
}

void palm_xen_close(palm_xen_handles *h)
{
    if (h->xsh) xs_close(h->xsh);
    if (h->fmem) xenforeignmemory_close(h->fmem);
    if (h->xch) xc_interface_close(h->xch);
    memset(h, 0, sizeof(*h));
}
uint32_t palm_xen_pfinfo_xtab(void) { return XEN_DOMCTL_PFINFO_XTAB; }
uint32_t palm_xen_pfinfo_broken(void) { return XEN_DOMCTL_PFINFO_BROKEN; }
uint32_t palm_xen_pfinfo_mask(void) { return XEN_DOMCTL_PFINFO_LTAB_MASK; }
int palm_xen_shutdown_suspend(void) { return SHUTDOWN_suspend; }

int palm_pipe_cloexec(int fds[2])
{
    return pipe2(fds, O_CLOEXEC);
}

int palm_xen_domains(xc_interface *xch, uint32_t first, palm_xen_domain *out, unsigned int max)
{
    xc_domaininfo_t *info = calloc(max ? max : 1, sizeof(*info));
    if (!info) { errno = ENOMEM; return -1; }
    int n = xc_domain_getinfolist(xch, first, max, info);
    for (int i = 0; i < n; i++) {
        palm_xen_domain *d = &out[i];
        memset(d, 0, sizeof(*d));
        d->domid = info[i].domain;
        d->flags = info[i].flags;
        d->tot_pages = info[i].tot_pages;
        d->max_pages = info[i].max_pages;
        d->online_vcpus = info[i].nr_online_vcpus;
        d->hvm = !!(info[i].flags & XEN_DOMINF_hvm_guest);
        d->paused = !!(info[i].flags & XEN_DOMINF_paused);
        d->shutdown = !!(info[i].flags & XEN_DOMINF_shutdown);
        d->dying = !!(info[i].flags & XEN_DOMINF_dying);
        d->shutdown_reason = (info[i].flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask;
        memcpy(d->handle, info[i].handle, sizeof(d->handle));
        d->cpu_time = info[i].cpu_time;
    }
    int saved = errno;
    free(info);
    errno = saved;
    return n;
}

int palm_xen_pfn_types(xc_interface *xch, uint32_t domid, unsigned int num, xen_pfn_t *pfns)
{
    return xc_get_pfn_type_batch(xch, domid, num, pfns);
}

struct palm_xen_logdirty {
    xc_interface *xch;
    uint32_t domid;
    unsigned long pages;
    int npages;
    xc_hypercall_buffer_t hbuf;
    void *bitmap;
};

palm_xen_logdirty *palm_xen_logdirty_enable(xc_interface *xch, uint32_t domid, unsigned long pages)
{
    palm_xen_logdirty *ld = calloc(1, sizeof(*ld));
    if (!ld) { errno = ENOMEM; return NULL; }
    ld->xch = xch; ld->domid = domid; ld->pages = pages;
    ld->npages = (int)((((pages + 7) / 8) + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE);
    DECLARE_HYPERCALL_BUFFER(unsigned long, bitmap);
    bitmap = xc_hypercall_buffer_alloc_pages(xch, bitmap, ld->npages);
    if (!bitmap) { free(ld); errno = ENOMEM; return NULL; }
    ld->hbuf = *HYPERCALL_BUFFER(bitmap);
    ld->bitmap = bitmap;
    if (xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
        /* A previous run may have left log-dirty on: turn it off and try once more. */
        int first = errno;
        if (xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0 ||
            xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
            int e = errno ? errno : first;
            xc_hypercall_buffer_free_pages(xch, bitmap, ld->npages);
            free(ld);
            errno = e;
            return NULL;
        }
    }
    return ld;
}

int palm_xen_logdirty_clean(palm_xen_logdirty *ld, uint64_t *words, size_t nwords)
{
    xc_interface *xch = ld->xch;
    DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &ld->hbuf);
    memset(bitmap, 0, (size_t)ld->npages * XC_PAGE_SIZE);
    xc_shadow_op_stats_t stats;
    long long rc = xc_logdirty_control(xch, ld->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                                       HYPERCALL_BUFFER(bitmap), ld->pages, 0, &stats);
    if (rc < 0) return -1;
    size_t have = (ld->pages + 63) / 64;
    size_t n = nwords < have ? nwords : have;
    memcpy(words, bitmap, n * sizeof(uint64_t));
    return 0;
}

int palm_xen_logdirty_peek(palm_xen_logdirty *ld, uint32_t *dirty_count)
{
    xc_shadow_op_stats_t stats = { 0 };
    long long rc = xc_logdirty_control(ld->xch, ld->domid, XEN_DOMCTL_SHADOW_OP_PEEK, NULL, 0, 0, &stats);
    if (rc < 0) return -1;
    *dirty_count = stats.dirty_count;
    return 0;
}

int palm_xen_logdirty_disable(palm_xen_logdirty *ld)
{
    if (!ld) return 0;
    xc_interface *xch = ld->xch;
    int rc = xc_shadow_control(xch, ld->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
    int e = errno;
    DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &ld->hbuf);
    xc_hypercall_buffer_free_pages(xch, bitmap, ld->npages);
    free(ld);
    errno = e;
    return rc;
}

int palm_xen_cpu_policy(xc_interface *xch, uint32_t domid, void **leaves, uint32_t *leaves_bytes,
                        void **msrs, uint32_t *msrs_bytes)
{
    uint32_t nr_leaves = 0, nr_msrs = 0;
    *leaves = NULL; *msrs = NULL; *leaves_bytes = 0; *msrs_bytes = 0;
    if (xc_cpu_policy_get_size(xch, &nr_leaves, &nr_msrs) < 0) return -1;
    xen_cpuid_leaf_t *l = malloc((nr_leaves ? nr_leaves : 1) * sizeof(*l));
    xen_msr_entry_t *m = malloc((nr_msrs ? nr_msrs : 1) * sizeof(*m));
    xc_cpu_policy_t *policy = xc_cpu_policy_init();
    int rc = -1;
    if (!l || !m || !policy) { errno = ENOMEM; goto out; }
    if (xc_cpu_policy_get_domain(xch, domid, policy)) goto out;
    if (xc_cpu_policy_serialise(xch, policy, l, &nr_leaves, m, &nr_msrs)) goto out;
    *leaves = l; *leaves_bytes = nr_leaves * sizeof(*l); l = NULL;
    *msrs = m; *msrs_bytes = nr_msrs * sizeof(*m); m = NULL;
    rc = 0;
out:
    { int e = errno; free(l); free(m); xc_cpu_policy_destroy(policy); errno = e; }
    return rc;
}

int palm_xen_version(xc_interface *xch, char *buf, size_t len)
{
    int v = xc_version(xch, XENVER_version, NULL);
    if (v < 0) return -1;
    xen_extraversion_t extra;
    memset(extra, 0, sizeof(extra));
    if (xc_version(xch, XENVER_extraversion, &extra) < 0) extra[0] = 0;
    extra[sizeof(extra) - 1] = 0;
    snprintf(buf, len, "%d.%d%s", v >> 16, v & 0xffff, extra);
    return 0;
}

int palm_xen_physinfo(xc_interface *xch, uint64_t *free_bytes, uint64_t *total_bytes)
{
    xc_physinfo_t info;
    memset(&info, 0, sizeof(info));
    if (xc_physinfo(xch, &info) < 0) return -1;
    *free_bytes = (uint64_t)info.free_pages * XC_PAGE_SIZE;
    *total_bytes = (uint64_t)info.total_pages * XC_PAGE_SIZE;
    return 0;
}

int palm_xen_set_cap(xc_interface *xch, uint32_t domid, unsigned int cap)
{
    struct xen_domctl_sched_credit2 sdom2;
    memset(&sdom2, 0, sizeof(sdom2));
    if (xc_sched_credit2_domain_get(xch, domid, &sdom2) == 0) {
        sdom2.cap = cap;
        return xc_sched_credit2_domain_set(xch, domid, &sdom2);
    }
    /* Not credit2: the credit scheduler has the same cap. */
    struct xen_domctl_sched_credit sdom;
    memset(&sdom, 0, sizeof(sdom));
    if (xc_sched_credit_domain_get(xch, domid, &sdom) < 0) return -1;
    sdom.cap = cap;
    return xc_sched_credit_domain_set(xch, domid, &sdom);
}

int palm_xen_get_cap(xc_interface *xch, uint32_t domid, unsigned int *cap)
{
    struct xen_domctl_sched_credit2 sdom2;
    memset(&sdom2, 0, sizeof(sdom2));
    if (xc_sched_credit2_domain_get(xch, domid, &sdom2) == 0) { *cap = sdom2.cap; return 0; }
    struct xen_domctl_sched_credit sdom;
    memset(&sdom, 0, sizeof(sdom));
    if (xc_sched_credit_domain_get(xch, domid, &sdom) < 0) return -1;
    *cap = sdom.cap;
    return 0;
}
