package safefs

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSwapRace plays the VM's uid during the calls: it keeps swapping the
// directory x for a symlink to the outside directory, which holds a file of
// the same name as the one inside. Whatever the interleaving, the outside
// must stay untouched.
func TestSwapRace(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		x := filepath.Join(fx.root, "x")
		real := filepath.Join(fx.root, "x.real")
		plant := func() {
			os.Mkdir(real, 0o755)
			os.WriteFile(filepath.Join(real, "shadow"), []byte("inner"), 0o644)
		}
		plant()
		must(t, os.Rename(real, x))

		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if os.Rename(x, real) != nil {
					plant() // removed by the victim: plant it again
				}
				os.Symlink(fx.outside, x)
				time.Sleep(time.Microsecond)
				os.Remove(x)
				os.Rename(real, x)
			}
		}()

		deadline := time.Now().Add(300 * time.Millisecond)
		for i := 0; time.Now().Before(deadline); i++ {
			if f, err := fx.d.Open("x/shadow", os.O_WRONLY|os.O_TRUNC, 0); err == nil {
				f.Close()
			}
			if os.Geteuid() == 0 {
				fx.d.Chown("x/shadow", 4242, 4242)
			}
			fx.d.Chmod("x/shadow", 0o666)
			fx.d.Remove("x/shadow")
			fx.d.ReadFileCapped("x/shadow", 100)
			if i%16 == 0 {
				fx.d.RemoveAll("x")
			}
		}
		stop.Store(true)
		wg.Wait()
		fx.checkOutside(t)
	})
}
