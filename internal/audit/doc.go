// Package audit is Bulwark's tamper-evident audit log: who did what to which
// object, with what result, when and from where. Every mutating API call,
// every login attempt (success or failure) and every denied access is
// recorded.
//
// # Shape
//
// The core is pure and does no I/O: [Normalize] bounds and escapes a
// record's fields, [Chain] links a record to the one before it, and
// [VerifyRecords] (or the streaming [Verifier]) checks a sequence of records
// against signed [Checkpoint]s and names every problem it finds by sequence
// number and position. [Log] is the storage edge: an SQLite file (audit.db)
// that serialises appends and writes a signed checkpoint every N records.
//
// # Canonical encoding (version 1)
//
// A record's hash is the lowercase hex SHA-256 of its canonical encoding,
// which is, with no separators between the parts:
//
//	"bulwark-audit-record-v1\n"           24 bytes, a domain separator
//	Seq                                   8 bytes, unsigned big-endian
//	Time, User, Action, Object, Result,   each as a 4-byte unsigned big-endian
//	Source, Detail, Prev                  byte length followed by the bytes
//
// Time is the record's time in UTC formatted with Go's time.RFC3339Nano
// ("2006-01-02T15:04:05.999999999Z07:00": trailing zeros of the fraction
// dropped, the fraction omitted when zero, and "Z" for the zone), which is
// exactly the "time" string of the record's JSON form. The strings are the
// UTF-8 bytes as stored. Prev is the Hash of the record before, and for the
// first record (Seq 1) it is [GenesisPrev], 64 ASCII zeros. Hash itself is
// not part of the encoding. A record's JSON form (ExportJSONL) carries every
// field, so a verifier in any language can recompute the chain from an
// export.
//
// A checkpoint's signature is Ed25519 (RFC 8032, pure) over the ASCII bytes
//
//	"bulwark-audit-checkpoint\n" + decimal Seq + "\n" + Hash + "\n" + Time
//
// where Hash is the hash of record Seq and Time is when the checkpoint was
// made, formatted as above; there is no trailing newline.
//
// # What tampering is detected, and what is not
//
// An edited record no longer matches its own hash ("hash mismatch"). A record
// whose hash was recomputed after an edit breaks the next record's Prev link,
// and so does a removed or reordered record. Sequence numbers expose gaps and
// records out of order. Signed checkpoints catch what the chain alone cannot:
// a rewritten tail whose hashes were all recomputed, and records cut off the
// end of the log.
//
// Records after the newest checkpoint are protected by the chain alone:
// whoever can write the database can append records that chain correctly,
// and the next checkpoint will sign them. checkpointEvery bounds that
// window, and Close signs the head so that a clean shutdown leaves none; a
// head past the newest checkpoint after a restart means a crash or a
// forgery.
//
// The signing key lives beside the database (audit.key, mode 0600). Someone
// who can read it can forge checkpoints; someone who can delete the newest
// checkpoints together with the records after the previous one leaves a log
// that verifies. Local checkpoints therefore protect against an attacker who
// can write the database but not read the key, and against accidents. Against
// an attacker with the daemon's full privileges only copies held elsewhere
// help: ship checkpoints (or exports) off the host and verify against those
// with the public key. While the daemon runs, [Log.Verify] also compares the
// log with the head this process appended, which catches a truncation made
// behind its back.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL, so SQLite fsyncs the
// write-ahead log before each commit returns: a record [Log.Append] returned
// survives kill -9 of the daemon and power loss (on a disk that honours
// fsync). Each Append is one transaction, and so one WAL fsync; a checkpoint
// rides in the same transaction as the record it covers and costs no extra
// sync. Callers must treat an Append error as a reason to refuse the action
// they were about to record: the log fails closed.
package audit
