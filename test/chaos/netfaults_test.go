package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
)

// netFaults cuts and heals node-to-node links.
type netFaults interface {
	// cut drops traffic between nodes a and b in both directions.
	cut(a, b int) error
	// heal restores every link.
	heal() error
	close()
	String() string
	// stats describes what the cut links held or dropped, for the log.
	stats() string
}

// isolate cuts node id from every other node.
func isolate(c *cluster, id int) error {
	for _, n := range c.nodes {
		if n.id != id {
			if err := c.net.cut(id, n.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// relayFaults holds the relays of a link.
type relayFaults struct{ c *cluster }

func (f relayFaults) String() string { return "relay" }

func (f relayFaults) cut(a, b int) error {
	f.c.relays[[2]int{a, b}].hold()
	f.c.relays[[2]int{b, a}].hold()
	return nil
}

func (f relayFaults) heal() error {
	for _, r := range f.c.relays {
		r.release()
	}
	return nil
}

func (f relayFaults) close() { _ = f.heal() }

func (f relayFaults) stats() string {
	held := 0
	for _, r := range f.c.relays {
		held += int(r.waiting.Load())
	}
	return fmt.Sprintf("%d relay copies waiting", held)
}

// iptablesFaults drops packets of the relay-to-node hop, 127.0.0.a -> 127.0.0.b:internal
// and the replies, with rules in a chain of its own jumped to from OUTPUT (loopback
// packets pass OUTPUT once).
type iptablesFaults struct {
	c     *cluster
	chain string
}

// iptablesUsable says why iptables partitions cannot run here, or "".
func iptablesUsable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "iptables is not installed (scripts/chaos-setup.sh installs it)"
	}
	if out, err := exec.Command("iptables", "-w", "-L", "OUTPUT", "-n").CombinedOutput(); err != nil {
		return fmt.Sprintf("iptables does not work here: %v: %s", err, out)
	}
	return ""
}

func newIPTables(c *cluster) (*iptablesFaults, error) {
	if why := iptablesUsable(); why != "" {
		return nil, fmt.Errorf("iptables partitions: %s", why)
	}
	f := &iptablesFaults{c: c, chain: fmt.Sprintf("SLUICE-CHAOS-%d", os.Getpid())}
	if err := ipt("-N", f.chain); err != nil {
		return nil, err
	}
	if err := ipt("-I", "OUTPUT", "-j", f.chain); err != nil {
		_ = ipt("-X", f.chain)
		return nil, err
	}
	return f, nil
}

func (f *iptablesFaults) String() string { return "iptables" }

func ipt(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (f *iptablesFaults) cut(a, b int) error {
	for _, d := range [][2]int{{a, b}, {b, a}} {
		from, to := f.c.node(d[0]), f.c.node(d[1])
		_, port, _ := net.SplitHostPort(to.internal)
		if err := ipt("-A", f.chain, "-p", "tcp", "-s", from.ip, "-d", to.ip, "--dport", port, "-j", "DROP"); err != nil {
			return err
		}
		if err := ipt("-A", f.chain, "-p", "tcp", "-s", to.ip, "--sport", port, "-d", from.ip, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

func (f *iptablesFaults) stats() string {
	out, err := exec.Command("iptables", "-w", "-L", f.chain, "-n", "-v", "-x").CombinedOutput()
	if err != nil {
		return err.Error()
	}
	pkts := 0
	for _, l := range strings.Split(string(out), "\n") {
		fs := strings.Fields(l)
		if len(fs) > 2 && fs[2] == "DROP" {
			var n int
			fmt.Sscan(fs[0], &n)
			pkts += n
		}
	}
	return fmt.Sprintf("%d packets dropped", pkts)
}

func (f *iptablesFaults) heal() error { return ipt("-F", f.chain) }

func (f *iptablesFaults) close() {
	_ = ipt("-F", f.chain)
	_ = ipt("-D", "OUTPUT", "-j", f.chain)
	_ = ipt("-X", f.chain)
}
