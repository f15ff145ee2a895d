package netsw

import "github.com/bulwark-project/bulwark/internal/netsw/packet"

// drop counts a frame dropped for reason r at port p: f is the frame (parsed
// as far as it went), out the port it was going to (nil: not known).
func (s *Switch) drop(p *Port, r packet.Reason, f *packet.Frame, out *Port, now int64) {
	p.drop(r)
}
