/// The coordinator's schema as named, versioned migrations, the same on both backends.
///
/// Versioning rule: a migration, once released, never changes; every schema change is a new
/// migration appended to ``migrations``, applied in order exactly once (SQLite: GRDB's migrator
/// table; PostgreSQL: `palm_schema_migrations`, under an advisory lock so two coordinators
/// starting at once apply each migration once). A database whose applied list names a migration
/// this coordinator does not know was written by a newer version: it is refused
/// (``StoreError/schemaTooNew(applied:)``) instead of being used half-understood.
///
/// Column types are written once with four placeholders: `{int}` (64-bit integer), `{real}`
/// (double), `{text}`, `{bool}` (0/1 integer on both backends, so SQL compares with `= 1`).
public enum StoreSchema {
    public enum Dialect: Sendable { case sqlite, postgresql }

    public struct Migration: Sendable {
        public let name: String
        let sql: [String]

        func statements(_ dialect: Dialect) -> [String] {
            let types: [(String, String)] = dialect == .sqlite
                ? [("{int}", "INTEGER"), ("{real}", "DOUBLE"), ("{text}", "TEXT"), ("{bool}", "BOOLEAN")]
                : [("{int}", "BIGINT"), ("{real}", "DOUBLE PRECISION"), ("{text}", "TEXT"), ("{bool}", "SMALLINT")]
            return sql.map { s in types.reduce(s) { $0.replacingOccurrences(of: $1.0, with: $1.1) } }
        }
    }

    public static let migrations: [Migration] = [
        Migration(name: "v1: hosts, vms, migrations, nonces, audit", sql: [
            """
            CREATE TABLE host (name {text} PRIMARY KEY NOT NULL, fingerprint {text} NOT NULL UNIQUE, address {text} NOT NULL,
              maintenance {bool} NOT NULL DEFAULT 0, cpu_load {real} NOT NULL DEFAULT 0, memory_total {int} NOT NULL DEFAULT 0,
              memory_free {int} NOT NULL DEFAULT 0, last_heartbeat {real})
            """,
            """
            CREATE TABLE vm (name {text} PRIMARY KEY NOT NULL, host {text} NOT NULL REFERENCES host(name) ON DELETE CASCADE,
              memory_bytes {int} NOT NULL, dirty_rate {real} NOT NULL DEFAULT 0)
            """,
            """
            CREATE TABLE migration (id {text} PRIMARY KEY NOT NULL, vm {text} NOT NULL, source {text} NOT NULL,
              destination {text} NOT NULL, state {text} NOT NULL, reason {text}, requested_by {text} NOT NULL,
              created {real} NOT NULL, updated {real} NOT NULL)
            """,
            "CREATE TABLE ticket_nonce (nonce {text} PRIMARY KEY NOT NULL, migration {text} NOT NULL, expires {real} NOT NULL)",
            """
            CREATE TABLE audit (seq {int} PRIMARY KEY, time {real} NOT NULL, actor {text} NOT NULL, role {text} NOT NULL,
              action {text} NOT NULL, target {text} NOT NULL, allowed {bool} NOT NULL, detail {text} NOT NULL,
              prev_hash {text} NOT NULL, hash {text} NOT NULL, signature {text} NOT NULL)
            """,
        ]),
        Migration(name: "v2: heartbeats, orders, progress, outcomes", sql: [
            "ALTER TABLE host ADD COLUMN destination_address {text} NOT NULL DEFAULT ''",
            "ALTER TABLE host ADD COLUMN cpus {int} NOT NULL DEFAULT 1",
            "ALTER TABLE host ADD COLUMN memory_used {int} NOT NULL DEFAULT 0",
            "ALTER TABLE host ADD COLUMN evacuating {bool} NOT NULL DEFAULT 0",
            "ALTER TABLE vm ADD COLUMN cpu {real} NOT NULL DEFAULT 0",
            "ALTER TABLE vm ADD COLUMN last_moved {real}",
            "ALTER TABLE migration ADD COLUMN kind {text} NOT NULL DEFAULT 'manual'",
            "ALTER TABLE migration ADD COLUMN mode {text} NOT NULL DEFAULT 'pre-copy'",
            "ALTER TABLE migration ADD COLUMN downtime_target_ms {real}",
            "ALTER TABLE migration ADD COLUMN ticket {text}",
            "ALTER TABLE migration ADD COLUMN ticket_expires {real}",
            "ALTER TABLE migration ADD COLUMN cancel_requested {bool} NOT NULL DEFAULT 0",
            "ALTER TABLE migration ADD COLUMN phase {text}",
            "ALTER TABLE migration ADD COLUMN round {int}",
            "ALTER TABLE migration ADD COLUMN pages_left {int}",
            "ALTER TABLE migration ADD COLUMN rate {real}",
            "ALTER TABLE migration ADD COLUMN downtime_ms {real}",
            "ALTER TABLE migration ADD COLUMN total_seconds {real}",
            "ALTER TABLE migration ADD COLUMN rounds {int}",
            "ALTER TABLE migration ADD COLUMN detail {text}",
            "CREATE INDEX migration_by_state ON migration(state)",
            "CREATE INDEX migration_by_source ON migration(source, state)",
            "CREATE INDEX migration_by_destination ON migration(destination, state)",
            "CREATE INDEX vm_by_host ON vm(host)",
        ]),
        Migration(name: "v3: leader lease", sql: [
            // One row: who leads, under which epoch, until when (the database server's clock,
            // seconds since 1970). SQLite (one coordinator) never contends for it.
            "CREATE TABLE leader_lease (id {int} PRIMARY KEY CHECK (id = 1), holder {text} NOT NULL, epoch {int} NOT NULL, expires {real} NOT NULL, address {text} NOT NULL DEFAULT '')",
            "INSERT INTO leader_lease (id, holder, epoch, expires) VALUES (1, '', 0, 0)",
        ]),
        Migration(name: "v4: TPM enrollment, continuous attestation, platform policies", sql: [
            // One row per host whose palm-source reported a TPM. state: challenged (a credential
            // was sent), proven (activated: the AK is in the TPM the EK certificate names),
            // enrolled, refused, reenroll (an operator asked; the next identity is challenged).
            // pending_ak_name: a changed attestation key, waiting for an operator. trust: unknown |
            // trusted | untrusted (continuous attestation), with why; violation: the first thing
            // the host ran that the policy (version policy_version) does not allow, since its boot.
            """
            CREATE TABLE tpm_host (host {text} PRIMARY KEY NOT NULL, state {text} NOT NULL, detail {text} NOT NULL DEFAULT '',
              ek_public {text} NOT NULL, ek_certificate {text} NOT NULL, ak_public {text} NOT NULL, ak_name {text} NOT NULL,
              challenge_blob {text}, challenge_secret {text}, challenge_digest {text}, approve_requested {bool} NOT NULL DEFAULT 0,
              enrolled {real}, enrolled_by {text}, pending_ak_name {text},
              trust {text} NOT NULL DEFAULT 'unknown', trust_detail {text} NOT NULL DEFAULT '', attested {real},
              quote_nonce {text}, quote_requested {real}, ima_progress {text},
              violation {text}, policy_version {int})
            """,
            // A TPM host's last boot log and its verified IMA log since boot (base64), apart from
            // tpm_host: that row changes at every heartbeat, and a database rewrites a whole row
            // (a long IMA log with it) when one column changes.
            "CREATE TABLE tpm_log (host {text} PRIMARY KEY NOT NULL, boot_log {text}, ima_log {text})",
            // Bumped whenever the set of enrolled keys changes: with the policy's version, what an
            // agent's copy of the platform trust is compared against (it is sent only when stale).
            "CREATE TABLE platform_generation (id {int} PRIMARY KEY CHECK (id = 1), enrollment {int} NOT NULL)",
            "INSERT INTO platform_generation (id, enrollment) VALUES (1, 0)",
            // Every version of the platform policy; the highest is in force.
            """
            CREATE TABLE platform_policy (version {int} PRIMARY KEY NOT NULL, policy {text} NOT NULL, created {real} NOT NULL,
              created_by {text} NOT NULL, note {text} NOT NULL)
            """,
        ]),
    ]
}
