// libxl (libxenlight) for palm's Xen driver: the toolstack half of a migration — reading a
// domain's configuration, building an incoming domain from a migration stream, renaming and
// destroying — done in the agent's own process, as xl's receiver does, without an `xl` child.
// libxl's types stay on this side: Swift sees opaque handles, JSON text and error codes.
#include "CXenShims.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/time.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <xentoollog.h>

struct palm_libxl {
    libxl_ctx *ctx;
    xentoollog_logger_stdiostream *logger;
    FILE *log;
};

palm_libxl *palm_libxl_open(int log_fd, int verbose) {
    palm_libxl *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    int fd = dup(log_fd);
    if (fd < 0 || !(h->log = fdopen(fd, "a"))) {
        if (fd >= 0) close(fd);
        free(h);
        return NULL;
    }
    setvbuf(h->log, NULL, _IOLBF, 0);
    h->logger = xtl_createlogger_stdiostream(h->log, verbose ? XTL_DETAIL : XTL_WARN, XTL_STDIOSTREAM_HIDE_PROGRESS);
    if (!h->logger || libxl_ctx_alloc(&h->ctx, LIBXL_VERSION, 0, (xentoollog_logger *)h->logger) != 0) {
        int e = errno ? errno : EIO;
        if (h->logger) xtl_logger_destroy((xentoollog_logger *)h->logger);
        fclose(h->log);
        free(h);
        errno = e;
        return NULL;
    }
    return h;
}

void palm_libxl_close(palm_libxl *h) {
    if (!h) return;
    libxl_ctx_free(h->ctx);
    xtl_logger_destroy((xentoollog_logger *)h->logger);
    fclose(h->log);
    free(h);
}

int palm_libxl_config_json(palm_libxl *h, uint32_t domid, char **json) {
    libxl_domain_config config;
    libxl_domain_config_init(&config);
    int rc = libxl_retrieve_domain_configuration(h->ctx, domid, &config, NULL);
    if (rc == 0) {
        *json = libxl_domain_config_to_json(h->ctx, &config);
        if (!*json) rc = ERROR_NOMEM;
    }
    libxl_domain_config_dispose(&config);
    return rc;
}

// A configuration from libxl JSON; on failure nothing is left to dispose.
static int config_from_json(palm_libxl *h, const char *json, libxl_domain_config *config) {
    libxl_domain_config_init(config);
    int rc = libxl_domain_config_from_json(h->ctx, config, json);
    if (rc != 0) libxl_domain_config_dispose(config);
    return rc;
}

int palm_libxl_restore(palm_libxl *h, const char *config_json, int restore_fd, uint32_t *domid) {
    libxl_domain_config config;
    if (config_from_json(h, config_json, &config) != 0) return PALM_LIBXL_BAD_CONFIG;
    int rc;
    libxl_domain_restore_params params;
    libxl_domain_restore_params_init(&params);
    params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
    params.stream_version = 2;
    libxl_defbool_set(&params.userspace_colo_proxy, false);
    *domid = INVALID_DOMID;
    // Synchronous (no ao_how): returns when the stream's END record was read and the domain is
    // built, paused, with its devices, console and xenstore entries; on failure libxl destroys
    // what it created.
    rc = libxl_domain_create_restore(h->ctx, &config, domid, restore_fd, -1, &params, NULL, NULL);
    libxl_domain_restore_params_dispose(&params);
    libxl_domain_config_dispose(&config);
    return rc;
}

int palm_libxl_rename(palm_libxl *h, uint32_t domid, const char *new_name) {
    return libxl_domain_rename(h->ctx, domid, NULL, new_name);
}

int palm_libxl_destroy(palm_libxl *h, uint32_t domid) {
    return libxl_domain_destroy(h->ctx, domid, NULL);
}

int palm_libxl_unpause(palm_libxl *h, uint32_t domid) {
    return libxl_domain_unpause(h->ctx, domid, NULL);
}

void palm_libxl_free(void *p) { free(p); }

// ---- A domain's life after the move: what xl's per-domain process does (tools/xl/xl_vmcontrol.c,
// handle_domain_death), for the domains palm-dest brought in. Swift decides; these carry it out.

int palm_libxl_watch_death(palm_libxl *h, uint32_t domid, void **watch) {
    libxl_evgen_domain_death *w = NULL;
    int rc = libxl_evenable_domain_death(h->ctx, domid, 0, &w);
    *watch = w;
    return rc;
}

void palm_libxl_unwatch_death(palm_libxl *h, void *watch) {
    if (watch) libxl_evdisable_domain_death(h->ctx, (libxl_evgen_domain_death *)watch);
}

int palm_libxl_next_event(palm_libxl *h, int timeout_ms, int *kind, uint32_t *domid, int *reason) {
    libxl_event *event = NULL;
    int rc = libxl_event_check(h->ctx, &event, LIBXL_EVENTMASK_ALL, 0, 0);
    if (rc == ERROR_NOT_READY) {
        // libxl's file descriptors and timeouts for this context, polled here for at most
        // timeout_ms: watches added meanwhile by other threads are polled at the next call (a
        // thread blocked in libxl_event_wait was seen not to notice them).
        int nfds = 8, timeout = timeout_ms;
        struct pollfd *fds = NULL;
        struct timeval now;
        for (;;) {
            free(fds);
            fds = calloc((size_t)nfds, sizeof(*fds));
            if (!fds) return ERROR_NOMEM;
            gettimeofday(&now, NULL);
            timeout = timeout_ms;
            rc = libxl_osevent_beforepoll(h->ctx, &nfds, fds, &timeout, now);
            if (rc != ERROR_BUFFERFULL) break;
        }
        if (rc != 0) {
            free(fds);
            return rc;
        }
        if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
            free(fds);
            return ERROR_FAIL;
        }
        gettimeofday(&now, NULL);
        libxl_osevent_afterpoll(h->ctx, nfds, fds, now);
        free(fds);
        rc = libxl_event_check(h->ctx, &event, LIBXL_EVENTMASK_ALL, 0, 0);
    }
    if (rc == ERROR_NOT_READY) return PALM_LIBXL_NO_EVENT;
    if (rc != 0) return rc;
    *domid = event->domid;
    *reason = -1;
    switch (event->type) {
    case LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN:
        *kind = PALM_LIBXL_EVENT_SHUTDOWN;
        *reason = event->u.domain_shutdown.shutdown_reason;
        break;
    case LIBXL_EVENT_TYPE_DOMAIN_DEATH:
        *kind = PALM_LIBXL_EVENT_DEATH;
        break;
    default:
        *kind = PALM_LIBXL_EVENT_OTHER;
    }
    libxl_event_free(h->ctx, event);
    return 0;
}

const char *palm_libxl_reason_name(int reason) {
    const char *name = libxl_shutdown_reason_to_string((libxl_shutdown_reason)reason);
    return name ? name : "unknown";
}

static const char *action_name(libxl_action_on_shutdown a) {
    const char *name = libxl_action_on_shutdown_to_string(a);
    return name ? name : "unknown";
}

int palm_libxl_shutdown_actions(palm_libxl *h, uint32_t domid, const char **poweroff, const char **reboot,
                                const char **watchdog, const char **crash, const char **soft_reset) {
    libxl_domain_config config;
    libxl_domain_config_init(&config);
    int rc = libxl_retrieve_domain_configuration(h->ctx, domid, &config, NULL);
    if (rc == 0) {
        *poweroff = action_name(config.on_poweroff);
        *reboot = action_name(config.on_reboot);
        *watchdog = action_name(config.on_watchdog);
        *crash = action_name(config.on_crash);
        *soft_reset = action_name(config.on_soft_reset);
    }
    libxl_domain_config_dispose(&config);
    return rc;
}

int palm_libxl_create(palm_libxl *h, const char *config_json, uint32_t *domid) {
    libxl_domain_config config;
    if (config_from_json(h, config_json, &config) != 0) return PALM_LIBXL_BAD_CONFIG;
    int rc;
    // A new domain id, as xl's restart does: the old one may still be dying.
    config.c_info.domid = INVALID_DOMID;
    *domid = INVALID_DOMID;
    rc = libxl_domain_create_new(h->ctx, &config, domid, NULL, NULL);
    if (rc == 0) rc = libxl_domain_unpause(h->ctx, *domid, NULL);
    libxl_domain_config_dispose(&config);
    return rc;
}

int palm_libxl_preserve(palm_libxl *h, uint32_t domid, const char *name_suffix) {
    libxl_domain_config config;
    libxl_domain_config_init(&config);
    int rc = libxl_retrieve_domain_configuration(h->ctx, domid, &config, NULL);
    if (rc == 0) {
        libxl_uuid fresh;
        libxl_uuid_generate(&fresh);
        rc = libxl_domain_preserve(h->ctx, domid, &config.c_info, name_suffix, fresh);
    }
    libxl_domain_config_dispose(&config);
    return rc;
}

int palm_libxl_core_dump(palm_libxl *h, uint32_t domid, const char *path) {
    return libxl_domain_core_dump(h->ctx, domid, path, NULL);
}

static const char kept_userid[] = "palm";

int palm_libxl_set_kept(palm_libxl *h, uint32_t domid, const char *note) {
    return libxl_userdata_store(h->ctx, domid, kept_userid, (const uint8_t *)note, (int)strlen(note));
}

int palm_libxl_kept_domains(palm_libxl *h, uint32_t **domids, int *count) {
    int n = 0;
    libxl_dominfo *list = libxl_list_domain(h->ctx, &n);
    *domids = NULL;
    *count = 0;
    if (!list) return ERROR_FAIL;
    uint32_t *out = calloc(n > 0 ? (size_t)n : 1, sizeof(uint32_t));
    if (!out) {
        libxl_dominfo_list_free(list, n);
        return ERROR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        uint8_t *data = NULL;
        int len = 0;
        if (libxl_userdata_retrieve(h->ctx, list[i].domid, kept_userid, &data, &len) == 0 && len > 0)
            out[(*count)++] = list[i].domid;
        free(data);
    }
    libxl_dominfo_list_free(list, n);
    *domids = out;
    return 0;
}
