package stream

import "bytes"

// place holds payload (starting at seq) in direction h and delivers what
// became contiguous. Every check runs before anything is written: a
// refused segment (false) leaves no trace, since it will not reach the
// receiver either.
func (c *Conn) place(d Dir, h *half, seq uint32, data []byte, r *Result) bool {
	off := int64(int32(seq - h.base))
	if off < 0 {
		if int64(len(data)) <= -off {
			// Acknowledged already: the receiver discards it (a keep-alive
			// probe also lands here).
			return true
		}
		data = data[-off:]
		off = 0
	}
	nxt := int64(h.next - h.base)
	// Bytes past the depth are neither held nor compared.
	if lim := nxt + (c.cfg.Depth - h.offset); off+int64(len(data)) > lim {
		if off >= lim {
			return true
		}
		data = data[:lim-off]
	}
	o, next := int(off), int(nxt)
	overlap := false

	// Delivered, unacknowledged bytes: the receiver may not have them
	// yet, so a different copy is an evasion attempt.
	if o < next {
		k := min(next-o, len(data))
		if h.buf == nil || !bytes.Equal(data[:k], h.buf.b[h.head+o:h.head+o+k]) {
			r.add(EventOverlapDiff)
			return false
		}
		overlap = true
		data, o = data[k:], o+k
		if len(data) == 0 {
			r.add(EventOverlap)
			return true
		}
	}
	end := o + len(data)
	i, j, ns, ne, same, ok := h.scan(o, data)
	if !ok {
		r.add(EventOverlapDiff)
		return false
	}
	overlap = overlap || same
	inOrder := ns == next
	count := len(h.ranges) - (j - i)
	if !inOrder {
		count++
	}
	if count > c.cfg.MaxRanges {
		r.add(EventTooManySegments)
		return false
	}
	span := c.Buffered(d)
	if end > span {
		span = end
	}
	if span > c.cfg.MaxBuffered {
		r.add(EventBufferFull)
		return false
	}
	if !c.ensure(h, span) || (!inOrder && i == j && !c.ensureRanges(h, count)) {
		r.add(EventMemcap)
		return false
	}
	if overlap {
		r.add(EventOverlap)
	}

	// Commit. Overlapping bytes are equal, so copying them is harmless.
	copy(h.buf.b[h.head+o:], data)
	if !inOrder {
		g := rng{start: h.base + uint32(ns), end: h.base + uint32(ne)}
		if i == j {
			h.ranges = append(h.ranges, rng{})
			copy(h.ranges[i+1:], h.ranges[i:])
		} else {
			h.ranges = append(h.ranges[:i+1], h.ranges[j:]...)
		}
		h.ranges[i] = g
		return true
	}
	h.ranges = append(h.ranges[:0], h.ranges[j:]...)
	h.next = h.base + uint32(ne)
	c.deliver(d, h, h.buf.b[h.head+next:h.head+ne], r)
	return true
}

// scan finds the out-of-order ranges overlapping or adjacent to data at
// offset o: ranges[i:j], which merge with it into [ns, ne). It compares
// the overlapping bytes: ok is false if any differ, same is true if some
// were equal.
func (h *half) scan(o int, data []byte) (i, j, ns, ne int, same, ok bool) {
	end := o + len(data)
	i, j = len(h.ranges), len(h.ranges)
	ns, ne = o, end
	for k, g := range h.ranges {
		gs, ge := int(g.start-h.base), int(g.end-h.base)
		if ge < o {
			continue
		}
		if gs > end {
			j = k
			break
		}
		if i == len(h.ranges) {
			i = k
		}
		j = k + 1
		if a, b := max(gs, o), min(ge, end); a < b {
			if !bytes.Equal(data[a-o:b-o], h.buf.b[h.head+a:h.head+b]) {
				return 0, 0, 0, 0, false, false
			}
			same = true
		}
		ns, ne = min(ns, gs), max(ne, ge)
	}
	return min(i, j), j, ns, ne, same, true
}

// ensure makes h.buf hold span bytes from base, growing it within the
// Pool's budget.
func (c *Conn) ensure(h *half, span int) bool {
	if h.buf == nil {
		if span == 0 {
			return true
		}
		size := minBuffer << bufferClass(span)
		if !c.pool.reserve(int64(size)) {
			return false
		}
		h.buf, h.head = getBuffer(span), 0
		h.buf.b = h.buf.b[:span]
		return true
	}
	b := h.buf.b
	live := len(b) - h.head
	switch {
	case h.head+span <= cap(b):
		if h.head+span > len(b) {
			h.buf.b = b[:h.head+span]
		}
		return true
	case span <= cap(b):
		copy(b[:live], b[h.head:])
		h.buf.b, h.head = b[:span], 0
		return true
	}
	want := min(max(span, 2*cap(b)), c.cfg.MaxBuffered)
	size := minBuffer << bufferClass(want)
	if !c.pool.reserve(int64(size - cap(b))) {
		return false
	}
	nb := getBuffer(want)
	nb.b = nb.b[:span]
	copy(nb.b, b[h.head:])
	putBuffer(h.buf)
	h.buf, h.head = nb, 0
	return true
}

// ensureRanges makes room for n ranges within the Pool's budget.
func (c *Conn) ensureRanges(h *half, n int) bool {
	if n <= cap(h.ranges) {
		return true
	}
	size := min(max(n, 2*cap(h.ranges), 4), c.cfg.MaxRanges)
	if !c.pool.reserve(int64((size - cap(h.ranges)) * rangeBytes)) {
		return false
	}
	nr := make([]rng, len(h.ranges), size)
	copy(nr, h.ranges)
	h.ranges = nr
	return true
}

// release forgets n bytes from base on: the receiver acknowledged them.
func (c *Conn) release(h *half, n uint32) {
	h.base += n
	if h.buf == nil {
		return
	}
	if live := len(h.buf.b) - h.head; int(n) >= live {
		c.free(h)
		return
	}
	h.head += int(n)
}

// free gives h's buffer and range table back to the Pool.
func (c *Conn) free(h *half) {
	if h.buf != nil {
		c.pool.release(int64(cap(h.buf.b)))
		putBuffer(h.buf)
		h.buf, h.head = nil, 0
	}
	if h.ranges != nil {
		c.pool.release(int64(cap(h.ranges) * rangeBytes))
		h.ranges = nil
	}
}

// forceTo moves h's position to target, which the receiver acknowledged:
// buffered ranges before it are delivered, holes become gaps.
func (c *Conn) forceTo(d Dir, h *half, target uint32, r *Result) {
	for !h.depthDone && before(h.next, target) {
		if len(h.ranges) == 0 || !before(h.ranges[0].start, target) {
			c.gap(d, h, target-h.next, r)
			continue
		}
		g := h.ranges[0]
		if before(h.next, g.start) {
			c.gap(d, h, g.start-h.next, r)
			continue
		}
		from, to := int(h.next-h.base), int(g.end-h.base)
		h.ranges = append(h.ranges[:0], h.ranges[1:]...)
		h.next = g.end
		c.deliver(d, h, h.buf.b[h.head+from:h.head+to], r)
	}
}

// gap tells the consumer that n bytes of h will never come.
func (c *Conn) gap(d Dir, h *half, n uint32, r *Result) {
	h.next += n
	k := min(int64(n), c.cfg.Depth-h.offset)
	h.offset += k
	r.add(EventGap)
	c.out.Gap(d, k)
	if h.offset >= c.cfg.Depth {
		c.stopDepth(h, r)
	}
}

// deliver hands b (held bytes, or the segment's) to the consumer.
func (c *Conn) deliver(d Dir, h *half, b []byte, r *Result) {
	h.offset += int64(len(b))
	r.Delivered += len(b)
	c.out.Data(d, b)
	if h.offset >= c.cfg.Depth {
		c.stopDepth(h, r)
	}
}

// stopDepth ends reassembly of a direction that reached the depth. Its
// held bytes go: past the depth nothing is inspected, so nothing needs
// comparing.
func (c *Conn) stopDepth(h *half, r *Result) {
	h.depthDone = true
	r.add(EventDepth)
	c.free(h)
	h.base = h.next
}
