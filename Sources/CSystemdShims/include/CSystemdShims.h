/// C shims for libsystemd. sd_journal_send and sd_notifyf are variadic and cannot be called
/// from Swift; palm uses sd_journal_sendv and sd_notify, which these helpers wrap.
#ifndef PALM_CSYSTEMD_SHIMS_H
#define PALM_CSYSTEMD_SHIMS_H
// palm's LogHandler sets CODE_FILE/CODE_LINE/CODE_FUNC of the Swift call site itself; without this
// sd_journal_sendv would add the shim's own location to every entry.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/// Sends one structured journal entry made of `count` "FIELD=value" items.
int palm_journal_sendv(const struct iovec *items, int count);
/// Forwards a newline-separated state string ("READY=1\nSTATUS=…") to the service manager.
int palm_notify(int unset_environment, const char *state);
#endif
