/* xenwatch: measures a migration's downtime from dom0, the same way for any toolstack.
 * Downtime is from the first instant the guest's domain is seen suspended or paused until the
 * first instant another domain that carries the guest's name (or NAME--incoming) is seen running.
 * Until the guest stops, the watcher sleeps on xenstore's @releaseDomain watch, which xenstored
 * fires when Xen reports a domain shut down — a suspend is one (reason "suspend"), so a suspend is
 * seen when it happens — and looks at the domain list at least every IDLE_MS (a plain pause fires
 * no watch: it is seen at most IDLE_MS late). From the stop on it polls Xen's domain list every
 * 1 ms (unpausing fires nothing). So it costs dom0 almost nothing while a migration copies pages,
 * and polls only while the guest is down. Prints "downtime_ms=… old_domid=… new_domid=…" and exits
 * 0, or exits 1 after TIMEOUT seconds without a completed hand-off.
 *   xenwatch NAME [TIMEOUT_S [IDLE_MS]] */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenstore.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static int named(struct xs_handle *xs, uint32_t domid, const char *name) {
    char path[64]; unsigned int len = 0;
    snprintf(path, sizeof path, "/local/domain/%u/name", domid);
    char *n = xs_read(xs, XBT_NULL, path, &len);
    if (!n) return -1;   /* name not written yet: ask again next time */
    size_t l = strlen(name);
    int ok = strncmp(n, name, l) == 0 && (n[l] == 0 || n[l] == '-');
    free(n);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: xenwatch NAME [TIMEOUT_S [IDLE_MS]]\n"); return 2; }
    const char *name = argv[1];
    double timeout = argc > 2 ? atof(argv[2]) : 600;
    int idle_ms = argc > 3 ? atoi(argv[3]) : 20;
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    struct xs_handle *xs = xs_open(0);
    if (!xch || !xs) { perror("xenwatch: open"); return 2; }
    if (!xs_watch(xs, "@releaseDomain", "release")) { perror("xenwatch: xs_watch @releaseDomain"); return 2; }
    struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
    xc_domaininfo_t info[64];
    uint32_t old = 0; double down = 0, start = now();
    long polls = 0, events = 0;
    int known[65536] = {0};  /* 0 unknown, 1 ours, 2 other */
    while (now() - start < timeout) {
        int n = xc_domain_getinfolist(xch, 1, 64, info);
        double t = now();
        polls++;
        for (int i = 0; i < n; i++) {
            uint32_t d = info[i].domain;
            if (!known[d]) { int r = named(xs, d, name); known[d] = r < 0 ? 0 : r ? 1 : 2; }
            if (known[d] != 1) continue;
            int stopped = info[i].flags & (XEN_DOMINF_paused | XEN_DOMINF_shutdown);
            if (!old && !stopped) old = d;
            if (old == d && stopped && down == 0) down = t;
            if (old && d != old && down > 0 && !stopped && !(info[i].flags & XEN_DOMINF_dying)) {
                printf("downtime_ms=%.1f old_domid=%u new_domid=%u polls=%ld watch_events=%ld\n", (t - down) * 1000, old, d, polls, events);
                return 0;
            }
        }
        if (down > 0) { usleep(1000); continue; }
        /* Not stopped yet: sleep until a domain shuts down (or IDLE_MS pass). */
        if (poll(&pfd, 1, idle_ms) > 0) {
            unsigned int k;
            char **w = xs_read_watch(xs, &k);
            free(w);
            events++;
        }
    }
    printf("downtime_ms=none (no hand-off seen in %.0f s)\n", timeout);
    return 1;
}
