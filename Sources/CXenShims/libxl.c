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

int palm_libxl_restore(palm_libxl *h, const char *config_json, int restore_fd, uint32_t *domid) {
    libxl_domain_config config;
    libxl_domain_config_init(&config);
    int rc = libxl_domain_config_from_json(h->ctx, &config, config_json);
    if (rc != 0) {
        libxl_domain_config_dispose(&config);
        return PALM_LIBXL_BAD_CONFIG;
    }
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
