package procid

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

func TestIdentityTellsAProcessFromALaterOneWithItsPid(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), self.String()) {
		t.Fatalf("Alive(self, %q) = false", self)
	}
	later := self
	later.Ticks++
	if Alive(os.Getpid(), later.String()) {
		t.Errorf("a process that started one tick later is taken for this one")
	}
	otherBoot := self
	otherBoot.Boot = "00000000-0000-0000-0000-000000000000"
	if Alive(os.Getpid(), otherBoot.String()) {
		t.Errorf("a process of another boot is taken for this one")
	}
	if !Alive(os.Getpid(), "") {
		t.Errorf("with no identity recorded, the live pid must count as alive")
	}
	back, err := Parse(self.String())
	if err != nil || back != self {
		t.Errorf("Parse(String()) = %v, %v; want %v", back, err, self)
	}
}

func TestZombieAndGoneProcessesAreNotAlive(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	id, err := Of(pid) // a zombie keeps its identity
	if err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie once it exits, which must not count.
	testutil.Eventually(t, 15*time.Second, "the exited child to stop counting as alive", func() bool {
		return !Alive(pid, id.String())
	})
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err != nil || !strings.Contains(string(b), ") Z") {
		t.Fatalf("child is not a zombie yet: %q, %v", b, err)
	}
	_ = cmd.Wait()
	if Alive(pid, "") {
		t.Errorf("a reaped process counts as alive")
	}
}
