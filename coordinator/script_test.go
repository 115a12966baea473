package coordinator

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/scripts")

// TestScripts runs the rebalance scenarios of testdata/scripts. Each file
// is a sequence of blocks: a command line, "----", the expected output,
// and a blank line. Commands:
//
//	topics t=6 u=2                 set the cluster's topics
//	join a topics=t,u pattern=re instance=i assignor=range session=10s
//	rejoin a                       the member reconnects with its id and epoch
//	leave a | disconnect a | confirm a | heartbeat a
//	subscribe a topics=u pattern=re
//	advance 10s                    move the clock
//	expire                         expel members past their session
//	commit a epoch=N t/0 ...       (epoch=cur: the member's current epoch)
//	settle                         every member confirms until stable
//	failover                       rebuild the group from its log records
//	state                          print the group
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/scripts/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

type scriptEnv struct {
	t      *testing.T
	g      *Group
	now    time.Time
	names  map[string]string // name -> member id
	topics map[string]int32
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := &scriptEnv{t: t, now: time.Unix(1000, 0), names: map[string]string{}, topics: map[string]int32{}}
	env.g = NewGroup("g", env.topics)
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		var want strings.Builder
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s: command %q not followed by ----", path, line)
		}
		for sc.Scan() && sc.Text() != "" {
			want.WriteString(sc.Text() + "\n")
		}
		got := env.run(line)
		out.WriteString(line + "\n----\n" + got + "\n")
		if !*rewrite && got != want.String() {
			t.Errorf("%s: %s\n got:\n%s\nwant:\n%s", path, line, got, want.String())
		}
		env.checkInvariants(line)
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *scriptEnv) run(line string) string {
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	kv := map[string]string{}
	var pos []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	id := func() string {
		if len(pos) == 0 {
			e.t.Fatalf("%s: member name missing", line)
		}
		return e.names[pos[0]]
	}
	var changed []string
	var err error
	switch cmd {
	case "topics":
		for k, v := range kv {
			n, _ := strconv.Atoi(v)
			e.topics[k] = int32(n)
		}
		next := maps.Clone(e.topics)
		changed = e.g.SetTopics(next)
	case "join":
		p := JoinParams{InstanceID: kv["instance"], Sub: sub(kv), SessionTimeout: 10 * time.Second}
		if d, ok := kv["session"]; ok {
			p.SessionTimeout, _ = time.ParseDuration(d)
		}
		switch kv["assignor"] {
		case "range":
			p.Assignor = AssignorRange
		case "roundrobin":
			p.Assignor = AssignorRoundRobin
		case "sticky":
			p.Assignor = AssignorUniformSticky
		}
		var m *Member
		m, changed, err = e.g.Join(p, e.now)
		if err == nil {
			for n, id := range e.names {
				if id == m.ID { // a static member's new incarnation
					delete(e.names, n)
				}
			}
			e.names[pos[0]] = m.ID
		}
	case "rejoin":
		m := e.g.Members[id()]
		if m == nil {
			return "error: unknown member\n"
		}
		_, changed, err = e.g.Join(JoinParams{MemberID: m.ID, MemberEpoch: m.Epoch, InstanceID: m.InstanceID, Sub: m.Sub, SessionTimeout: m.SessionTimeout}, e.now)
	case "leave":
		changed, err = e.g.Leave(id())
	case "disconnect":
		changed, err = e.g.Disconnect(id(), e.now)
	case "confirm":
		var epoch int32
		if m := e.g.Members[id()]; m != nil {
			epoch = m.Epoch
		}
		changed, err = e.g.Confirm(id(), epoch, e.now)
	case "heartbeat":
		var epoch int32
		if m := e.g.Members[id()]; m != nil {
			epoch = m.Epoch
		}
		err = e.g.Heartbeat(id(), epoch, e.now)
	case "subscribe":
		changed, err = e.g.UpdateSubscription(id(), sub(kv), e.now)
	case "advance":
		d, _ := time.ParseDuration(pos[0])
		e.now = e.now.Add(d)
		return "ok\n"
	case "expire":
		var expired []string
		expired, changed = e.g.Expire(e.now)
		return "expired: " + e.nameList(expired) + "\n" + e.describe(changed)
	case "commit":
		m := e.g.Members[id()]
		epoch := int32(0)
		if kv["epoch"] == "cur" && m != nil {
			epoch = m.Epoch
		} else {
			n, _ := strconv.Atoi(kv["epoch"])
			epoch = int32(n)
		}
		var tps []TP
		for _, s := range pos[1:] {
			tps = append(tps, parseTP(s))
		}
		if err := e.g.CheckCommit(id(), epoch, tps); err != nil {
			return scriptErr(err)
		}
		return "ok\n"
	case "settle":
		for range 100 {
			var any bool
			for _, mid := range slices.Sorted(maps.Keys(e.g.Members)) {
				m := e.g.Members[mid]
				if len(m.Revoking) > 0 {
					c, err := e.g.Confirm(mid, m.Epoch, e.now)
					if err != nil {
						e.t.Fatal(err)
					}
					changed = union(changed, c)
					any = true
				}
			}
			if !any {
				break
			}
		}
	case "failover":
		e.g = rebuild(e.t, e.g, e.now)
		return e.describe(nil)
	case "state":
		return e.describe(nil)
	default:
		e.t.Fatalf("unknown command %q", cmd)
	}
	if err != nil {
		return scriptErr(err)
	}
	return e.describe(changed)
}

// scriptErr prints an error without the random member id.
func scriptErr(err error) string {
	var se *StaleEpochError
	if errors.As(err, &se) {
		return fmt.Sprintf("error: stale epoch %d (current %d): %s\n", se.Epoch, se.CurrentEpoch, se.Reason)
	}
	return "error: " + err.Error() + "\n"
}

func sub(kv map[string]string) Subscription {
	var s Subscription
	if v := kv["topics"]; v != "" {
		s.Topics = strings.Split(v, ",")
	}
	s.Pattern = kv["pattern"]
	return s
}

func parseTP(s string) TP {
	t, p, _ := strings.Cut(s, "/")
	n, _ := strconv.Atoi(p)
	return TP{t, int32(n)}
}

func (e *scriptEnv) name(id string) string {
	for n, i := range e.names {
		if i == id {
			return n
		}
	}
	return "?" + id
}

func (e *scriptEnv) nameList(ids []string) string {
	var ns []string
	for _, id := range ids {
		ns = append(ns, e.name(id))
	}
	slices.Sort(ns)
	if len(ns) == 0 {
		return "-"
	}
	return strings.Join(ns, " ")
}

func tpList[V any](m map[TP]V) string {
	tps := sortTPs(slices.Collect(maps.Keys(m)))
	if len(tps) == 0 {
		return "-"
	}
	var s []string
	for _, tp := range tps {
		s = append(s, fmt.Sprintf("%s/%d", tp.Topic, tp.Partition))
	}
	return strings.Join(s, ",")
}

// describe prints the group: epoch and state, then one line per member.
func (e *scriptEnv) describe(changed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "group epoch=%d state=%s changed=%s\n", e.g.Epoch, e.g.State(), e.nameList(changed))
	var names []string
	for _, id := range slices.Collect(maps.Keys(e.g.Members)) {
		names = append(names, e.name(id))
	}
	slices.Sort(names)
	for _, n := range names {
		m := e.g.Members[e.names[n]]
		conn := ""
		if !m.Connected {
			conn = " (away)"
		}
		fmt.Fprintf(&b, "  %s epoch=%d assigned=%s revoking=%s target=%s%s\n", n, m.Epoch, tpList(m.Assigned), tpList(m.Revoking), tpList(e.g.Target[m.ID]), conn)
	}
	return b.String()
}

// checkInvariants: no partition has two owners; with settled members,
// every subscribed partition has an owner.
func (e *scriptEnv) checkInvariants(line string) {
	if err := ownershipInvariant(e.g); err != nil {
		e.t.Fatalf("after %q: %v", line, err)
	}
}

// ownershipInvariant checks that no partition is owned by two members.
func ownershipInvariant(g *Group) error {
	owner := map[TP]string{}
	for id, m := range g.Members {
		for _, set := range []map[TP]int32{m.Assigned, m.Revoking} {
			for tp := range set {
				if o, ok := owner[tp]; ok {
					return fmt.Errorf("%v owned by %s and %s", tp, o, id)
				}
				owner[tp] = id
			}
		}
	}
	return nil
}
