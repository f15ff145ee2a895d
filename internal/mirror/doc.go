// Package mirror is the virtual switch's traffic mirror (SPAN): it copies
// the frames of chosen ports or flows to a rotating pcap file, to a
// monitoring VM's NIC (a monitor port), or as ERSPAN type II over GRE to a
// remote collector.
//
// The Manager is a mirror stage of the switch's pipeline
// (netsw.SetMirrorStages): it runs per destination port, after the
// firewall and the inspection stages admitted the frame, so a session sees
// exactly what is delivered. Its Process does no I/O and never blocks: a
// matching frame is copied (cut to the session's snap length) into a
// buffer from the session's bounded pool and queued; one writer goroutine
// per session drains the queue into the target. A full queue drops the
// copy, counted and logged once a second. Each frame is copied at most once
// per session, however many ports it is delivered to (FrameContext.Seq).
//
// Threat model: the frames are the guests', hostile; they are copied as
// opaque bytes and never parsed here beyond the switch's own parse. The
// pcap directory is root-only, and files in it are created with
// O_CREAT|O_EXCL below a directory descriptor without following symlinks
// (internal/safefs). A monitor port cannot send: it is a tap, not a way
// into the network.
package mirror
