#include "CSystemdShims.h"

int palm_journal_sendv(const struct iovec *items, int count) { return sd_journal_sendv(items, count); }
int palm_notify(int unset_environment, const char *state) { return sd_notify(unset_environment, state); }
