package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/store"
)

// kindVolume is the store kind of volume records, named "POOL/NAME".
const kindVolume = "volume"

// maxChain bounds a backing chain (clone of a clone of ...): every open
// walks it, and each layer is one more descriptor for QEMU.
const maxChain = 8

// ObjectStore is the part of the store volume records live in.
type ObjectStore interface {
	CreateObject(ctx context.Context, kind, name string, spec []byte) error
	UpdateObject(ctx context.Context, kind, name string, spec []byte) error
	ListObjects(ctx context.Context, kind string) ([]*store.Object, error)
	DeleteObject(ctx context.Context, kind, name string) error
}

// Use is one VM disk that names a volume.
type Use struct {
	VM       string `json:"vm"`
	Disk     int    `json:"disk"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// UsersFunc returns the VM disks that name the volume ref ("POOL/NAME").
// The VM manager provides it; it may read the store and must not call
// back into the Service.
type UsersFunc func(ctx context.Context, ref string) ([]Use, error)

// Config is the host side of the storage service.
type Config struct {
	// Pools maps pool names to directories; it must hold DefaultPool.
	Pools map[string]string
	// QemuImg is the qemu-img binary ("" = qemu-img on PATH).
	QemuImg string
	Log     *slog.Logger
}

// Service owns the pools and the volume records. Its methods may be called
// concurrently; operations on one volume exclude each other (busy), and
// long transfers (import, export) run without the service lock.
type Service struct {
	st         ObjectStore
	qemuImgBin string
	log        *slog.Logger

	mu    sync.Mutex
	pools map[string]*Pool
	vols  map[string]*Volume // by Ref
	busy  map[string]string  // Ref → operation in progress
	users UsersFunc
}

// New opens (making if needed) every configured pool and loads the volume
// records.
func New(ctx context.Context, st ObjectStore, cfg Config) (*Service, error) {
	if _, ok := cfg.Pools[DefaultPool]; !ok {
		return nil, fmt.Errorf("%w: no directory for the %q pool", ErrInvalid, DefaultPool)
	}
	if cfg.QemuImg == "" {
		cfg.QemuImg = "qemu-img"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{st: st, qemuImgBin: cfg.QemuImg, log: cfg.Log,
		pools: map[string]*Pool{}, vols: map[string]*Volume{}, busy: map[string]string{}}
	for name, dir := range cfg.Pools {
		p, err := openPool(name, dir)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.pools[name] = p
	}
	err := store.LoadObjects(ctx, st, kindVolume, func(v Volume) { s.vols[v.Ref()] = &v })
	if err == nil {
		err = s.recoverJournals(ctx) // before anything opens a volume
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pools' descriptors.
func (s *Service) Close() {
	for _, p := range s.pools {
		p.Close()
	}
}

// SetUsers gives the service the manager's view of which VMs use a volume.
// Without it nothing counts as in use.
func (s *Service) SetUsers(f UsersFunc) {
	s.mu.Lock()
	s.users = f
	s.mu.Unlock()
}

// Pools reports every pool with its space and volume count.
func (s *Service) Pools() []PoolInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PoolInfo, 0, len(s.pools))
	for _, p := range s.pools {
		pi := PoolInfo{Name: p.Name, Path: p.Path, Available: true}
		if err := p.check(); err != nil {
			pi.Available, pi.Problem = false, err.Error()
		} else if c, f, err := p.space(); err == nil {
			pi.Capacity, pi.Free = c, f
		}
		for _, v := range s.vols {
			if v.Pool == p.Name {
				pi.Volumes++
				pi.Allocated += p.allocated(v.FileName())
			}
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Volumes returns every volume record sorted by pool and name.
func (s *Service) Volumes() []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Volume, 0, len(s.vols))
	for _, v := range s.vols {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref() < out[j].Ref() })
	return out
}

// VolumeInfo is a volume with what is known about it now.
type VolumeInfo struct {
	Volume
	Allocated int64    `json:"allocated"` // bytes the file occupies
	Clones    []string `json:"clones,omitempty"`
	UsedBy    []Use    `json:"used_by,omitempty"`
	Problem   string   `json:"problem,omitempty"` // why opening it would fail
}

// Inspect returns one volume, its clones, its users and whether its file
// agrees with the record.
func (s *Service) Inspect(ctx context.Context, pool, name string) (*VolumeInfo, error) {
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	in := &VolumeInfo{Volume: *v, Clones: s.clonesLocked(v)}
	p := s.pools[pool]
	users := s.users
	s.mu.Unlock()
	if p != nil {
		in.Allocated = p.allocated(v.FileName())
	}
	if users != nil {
		if in.UsedBy, err = users(ctx, v.Ref()); err != nil {
			return nil, err
		}
	}
	if layers, err := s.OpenChain(ctx, v.Ref(), true); err != nil {
		in.Problem = err.Error()
	} else {
		CloseLayers(layers)
	}
	return in, nil
}

func (s *Service) getLocked(pool, name string) (*Volume, error) {
	if err := ValidateName("pool", pool); err != nil {
		return nil, err
	}
	if err := ValidateName("volume", name); err != nil {
		return nil, err
	}
	v := s.vols[pool+"/"+name]
	if v == nil {
		return nil, fmt.Errorf("volume %s/%s: %w", pool, name, ErrNotFound)
	}
	return v, nil
}

func (s *Service) poolLocked(name string) (*Pool, error) {
	if err := ValidateName("pool", name); err != nil {
		return nil, err
	}
	p := s.pools[name]
	if p == nil {
		return nil, fmt.Errorf("pool %s: %w (pools: %s)", name, ErrNotFound, strings.Join(s.poolNamesLocked(), ", "))
	}
	return p, nil
}

func (s *Service) poolNamesLocked() []string {
	var n []string
	for k := range s.pools {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// clonesLocked names the volumes whose base is v.
func (s *Service) clonesLocked(v *Volume) []string {
	var out []string
	for _, c := range s.vols {
		if c.Pool == v.Pool && c.Base == v.Name {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

// reserve marks ref busy for op so that no other operation touches it; a
// new volume's name is reserved the same way until its record exists.
func (s *Service) reserveLocked(ref, op string, mustExist bool) error {
	if o := s.busy[ref]; o != "" {
		return fmt.Errorf("%w: volume %s: %s refused: a %s is in progress", ErrConflict, ref, op, o)
	}
	if _, ok := s.vols[ref]; ok && !mustExist {
		return fmt.Errorf("%w: volume %s: %s refused: it already exists", ErrConflict, ref, op)
	}
	s.busy[ref] = op
	return nil
}

func (s *Service) release(ref string) {
	s.mu.Lock()
	delete(s.busy, ref)
	s.mu.Unlock()
}

// record stores a new volume and publishes it.
func (s *Service) record(ctx context.Context, v *Volume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.st.CreateObject(ctx, kindVolume, v.Ref(), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: volume %s: already on record", ErrConflict, v.Ref())
		}
		return fmt.Errorf("volume %s: %w", v.Ref(), err)
	}
	s.mu.Lock()
	s.vols[v.Ref()] = v
	s.mu.Unlock()
	return nil
}

// CreateRequest asks for a new empty volume.
type CreateRequest struct {
	Pool   string `json:"pool,omitempty"` // default: DefaultPool
	Name   string `json:"name"`
	Format string `json:"format,omitempty"` // default: qcow2
	Size   int64  `json:"size"`             // bytes
}

// Create makes an empty (sparse) volume.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Volume, error) {
	if req.Pool == "" {
		req.Pool = DefaultPool
	}
	if req.Format == "" {
		req.Format = FormatQcow2
	}
	if err := ValidateName("name", req.Name); err != nil {
		return nil, err
	}
	if err := ValidateFormat(req.Format); err != nil {
		return nil, err
	}
	if err := ValidateSize(req.Size); err != nil {
		return nil, err
	}
	v := &Volume{Pool: req.Pool, Name: req.Name, Format: req.Format, Size: req.Size, Created: time.Now().UTC()}
	p, err := s.begin(v.Ref(), req.Pool, "create")
	if err != nil {
		return nil, err
	}
	defer s.release(v.Ref())
	err = s.makeFile(ctx, p, v, func(tmp string) error {
		return s.create(ctx, p, tmp, v.Format, v.Size, "", "")
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// begin reserves a new volume's name in a pool that is available.
func (s *Service) begin(ref, pool, op string) (*Pool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(pool)
	if err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, s.reserveLocked(ref, op, false)
}

// makeFile runs fill on a fresh temporary name in the pool, then renames
// it to the volume's file and records the volume. On any failure the
// temporary file (or the renamed one, if recording fails) is removed.
func (s *Service) makeFile(ctx context.Context, p *Pool, v *Volume, fill func(tmp string) error) (err error) {
	tmp := tempName(v.Name)
	committed := false
	defer func() {
		if err == nil {
			return
		}
		name := tmp
		if committed {
			name = v.FileName()
		}
		if rerr := p.remove(name); rerr != nil {
			s.log.Error("storage: could not remove a half-made file", "pool", p.Name, "file", name, "err", rerr)
		}
		if perr := p.check(); perr != nil {
			err = fmt.Errorf("%w (%v)", err, perr)
		}
	}()
	if err := fill(tmp); err != nil {
		return fmt.Errorf("volume %s: %w", v.Ref(), spaceErr(p, err))
	}
	if err := p.commit(tmp, v.FileName()); err != nil {
		return fmt.Errorf("volume %s: %w", v.Ref(), err)
	}
	committed = true
	return s.record(ctx, v)
}

// spaceErr turns a write that failed for lack of space into ErrNoSpace.
func spaceErr(p *Pool, err error) error {
	if err != nil && (strings.Contains(err.Error(), "No space left") || errors.Is(err, errNoSpace)) {
		return fmt.Errorf("%w: pool %s is full: %v", ErrNoSpace, p.Name, err)
	}
	return err
}

// Resize grows a volume.
func (s *Service) Resize(ctx context.Context, pool, name string, size int64) (*Volume, error) {
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	if err == nil {
		err = CheckResize(*v, size, len(s.clonesLocked(v)))
	}
	var p *Pool
	if err == nil {
		p, err = s.poolLocked(pool)
	}
	if err == nil {
		err = p.check()
	}
	if err == nil {
		err = s.reserveLocked(v.Ref(), "resize", true)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer s.release(v.Ref())
	if err := s.checkHeader(p, v); err != nil {
		return nil, err
	}
	if v, err = s.markWritten(ctx, v); err != nil {
		return nil, err
	}
	if err := s.resize(ctx, p, v.FileName(), v.Format, size); err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.Ref(), spaceErr(p, err))
	}
	nv := *v
	nv.Size = size
	b, _ := json.Marshal(&nv)
	if err := s.st.UpdateObject(ctx, kindVolume, nv.Ref(), b); err != nil {
		return nil, fmt.Errorf("volume %s: resized to %d bytes but not recorded: %w", nv.Ref(), size, err)
	}
	s.mu.Lock()
	s.vols[nv.Ref()] = &nv
	s.mu.Unlock()
	return &nv, nil
}

// Clone makes name a thin qcow2 overlay on base (same pool). The base
// becomes read-only for as long as it has clones: a VM may attach it
// read-only only, and it cannot be resized or deleted.
func (s *Service) Clone(ctx context.Context, pool, base, name string) (*Volume, error) {
	if pool == "" {
		pool = DefaultPool
	}
	if err := ValidateName("name", name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	b, err := s.getLocked(pool, base)
	var users UsersFunc
	if err == nil {
		users = s.users
		if o := s.busy[b.Ref()]; o != "" {
			err = fmt.Errorf("%w: volume %s: clone refused: a %s of the base is in progress", ErrConflict, b.Ref(), o)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if users != nil {
		us, err := users(ctx, b.Ref())
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			if !u.ReadOnly {
				return nil, fmt.Errorf("%w: volume %s: clone refused: VM %s has it attached read-write (disks[%d]); a base must not change under its clones", ErrConflict, b.Ref(), u.VM, u.Disk)
			}
		}
	}
	v := &Volume{Pool: pool, Name: name, Format: FormatQcow2, Size: b.Size, Base: b.Name, Created: time.Now().UTC()}
	p, err := s.begin(v.Ref(), pool, "clone")
	if err != nil {
		return nil, err
	}
	defer s.release(v.Ref())
	if err := s.checkHeader(p, b); err != nil {
		return nil, err
	}
	err = s.makeFile(ctx, p, v, func(tmp string) error {
		return s.create(ctx, p, tmp, FormatQcow2, v.Size, b.FileName(), b.Format)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Delete removes a volume that no VM uses and that has no clones.
func (s *Service) Delete(ctx context.Context, pool, name string) error {
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	var users UsersFunc
	if err == nil {
		if c := s.clonesLocked(v); len(c) > 0 {
			err = fmt.Errorf("%w: volume %s: delete refused: it is the base of clone(s) %s; delete them first", ErrConflict, v.Ref(), strings.Join(c, ", "))
		}
	}
	if err == nil {
		err = s.reserveLocked(v.Ref(), "delete", true)
		users = s.users
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	defer s.release(v.Ref())
	if users != nil {
		us, err := users(ctx, v.Ref())
		if err != nil {
			return err
		}
		if len(us) > 0 {
			var names []string
			for _, u := range us {
				names = append(names, fmt.Sprintf("%s (disks[%d])", u.VM, u.Disk))
			}
			return fmt.Errorf("%w: volume %s: delete refused: in use by VM %s; detach it or delete the VM first", ErrConflict, v.Ref(), strings.Join(names, ", "))
		}
	}
	s.mu.Lock()
	p := s.pools[v.Pool]
	s.mu.Unlock()
	// The file first goes to a temporary name, so a crash between here and
	// the end leaves a file the next start removes, not an orphan.
	tmp := tempName(v.Name)
	if p != nil {
		if err := p.dir.Rename(v.FileName(), tmp); err != nil && !errors.Is(err, errNotExist) {
			return fmt.Errorf("volume %s: delete: %w", v.Ref(), err)
		}
	}
	if err := s.st.DeleteObject(ctx, kindVolume, v.Ref()); err != nil && !errors.Is(err, store.ErrNotFound) {
		if p != nil {
			p.dir.Rename(tmp, v.FileName())
		}
		return fmt.Errorf("volume %s: delete: %w", v.Ref(), err)
	}
	s.mu.Lock()
	delete(s.vols, v.Ref())
	s.mu.Unlock()
	if p != nil {
		if err := p.remove(tmp); err != nil {
			s.log.Warn("storage: deleted volume's file not removed (removed at next start)", "volume", v.Ref(), "err", err)
		}
	}
	return nil
}
