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
// Anchors are copies of what the log vouches for, kept where the
// database's owner cannot rewrite them silently: every record's (Seq, Hash)
// head and every signed checkpoint go to [Sink]s after the commit — an
// append-only [AnchorFile] (synchronously), syslog and an HTTPS receiver
// ([RemoteSink]: checkpoints only, from a bounded queue that drops rather
// than block). [ReadAnchors] parses anchor files and [VerifyAnchors] (or the
// streaming [AnchorCheck]) compares a log with them, both pure.
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
// Anchors catch what the database alone cannot, whatever was done to its
// checkpoint rows: a record whose anchored hash differs from the stored one
// (a chain rewritten with recomputed hashes, a record removed and the rest
// renumbered; [KindAnchorMismatch], one problem per run of seqs), anchored
// records beyond the log's end (a cut tail, [KindCutTail]), anchors for a
// log that has no records ([KindWiped]), an anchored checkpoint whose
// signature fails ([KindAnchorSig]), a line that is no anchor
// ([KindAnchorUnreadable]) and more records after the newest anchor than a
// crash can leave ([KindUnanchored]). A line a crash cut short is expected
// and is not a problem.
//
// Records after the newest anchor are protected by the chain alone: a
// crash between a commit and its anchor line, or a power loss before the
// anchor file's next fsync (at each checkpoint and every checkpointEvery
// lines), leaves up to checkpointEvery of them; Report.Unanchored counts
// them and Open anchors them when the log is otherwise intact. Without an
// anchor file, records after the newest checkpoint have only the chain,
// and someone who deletes the newest checkpoints with the records after the
// previous one leaves a log that verifies.
//
// Open verifies the whole log, anchors included, before it appends
// anything (about 0.5 s for 100,000 records on a 2-vCPU VM; see
// docs/benchmarks.md). A log with problems is still opened so that it can
// record, but it signs no checkpoint while it is open ([ErrDamaged] from
// Checkpoint and Close): a checkpoint over a rewritten chain would make the
// forgery verify. What to do about the damage is the caller's decision; the
// daemon refuses to start unless told to run on it ([DamageRecord]).
//
// The signing key lives beside the database (audit.key, mode 0600). Someone
// who can read it can forge checkpoints, but not the head lines already in
// an anchor file or the checkpoints already sent off the host. The local
// anchor file is append-only (chattr +a) where the file system allows, which
// its owner cannot undo without CAP_LINUX_IMMUTABLE; root can, and can then
// rewrite the database, the key and the file together. Against root only
// the remote sinks help: verify the log against their copies with the
// public key (`bulwark audit verify --anchors FILE`). They hold checkpoints
// only, so against them the unprotected window is the records after the
// newest checkpoint that arrived. While the daemon runs, [Log.Verify] also
// compares the log with the head this process appended. docs/audit.md
// has the threat model.
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
