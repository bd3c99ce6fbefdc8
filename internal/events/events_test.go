package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	macA = "52:54:00:00:00:0a"
	macB = "52:54:00:00:00:0b"
	macC = "52:54:00:00:00:0c"
)

var ipA = netip.MustParseAddr("192.0.2.10")

// clock returns a Now func that advances one second per call.
func clock() func() time.Time {
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func stages(es []Event) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Detail)
	}
	return strings.Join(s, ",")
}

func TestRingPerMachine(t *testing.T) {
	tests := []struct {
		name string
		per  int
		n    int
		want string
	}{
		{"under the bound keeps all", 3, 2, "0,1"},
		{"at the bound keeps all", 3, 3, "0,1,2"},
		{"over the bound keeps the newest, oldest first", 3, 7, "4,5,6"},
		{"bound of one", 1, 4, "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Log{PerMachine: tc.per, Now: clock()}
			for i := 0; i < tc.n; i++ {
				l.Record(Event{MAC: macA, Stage: StageOffer, Detail: fmt.Sprint(i)})
				l.Record(Event{MAC: macB, Stage: StageOffer, Detail: "other"})
			}
			if got := stages(l.Timeline(macA)); got != tc.want {
				t.Fatalf("Timeline = %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("default bound", func(t *testing.T) {
		var l Log
		for i := 0; i < DefaultPerMachine+10; i++ {
			l.Record(Event{MAC: macA, Stage: StageOffer})
		}
		if n := len(l.Timeline(macA)); n != DefaultPerMachine {
			t.Fatalf("kept %d events, want DefaultPerMachine %d", n, DefaultPerMachine)
		}
	})
}

func TestMaxMachinesForgetsLeastRecent(t *testing.T) {
	l := &Log{MaxMachines: 2, Now: clock()}
	l.Record(Event{MAC: macA, Stage: StageDiscover})
	l.Record(Event{MAC: macB, Stage: StageDiscover})
	l.Record(Event{MAC: macA, Stage: StageOffer}) // A is now more recent than B
	l.Record(Event{MAC: macC, Stage: StageDiscover})
	if got := strings.Join(l.Machines(), ","); got != macA+","+macC {
		t.Fatalf("Machines = %s, want %s,%s (B seen least recently)", got, macA, macC)
	}
	if l.Timeline(macB) != nil {
		t.Fatal("forgotten machine still has a timeline")
	}
	if n := len(l.Timeline(macA)); n != 2 {
		t.Fatalf("A has %d events, want 2", n)
	}
}

func TestMACLearnedFromIP(t *testing.T) {
	mapped := netip.AddrFrom16(ipA.As16())
	tests := []struct {
		name  string
		setup func(*Log)
		e     Event
		key   string
	}{
		{"Learn then an event with only the address", func(l *Log) { l.Learn(ipA, macA) }, Event{IP: ipA, Stage: StageTFTPStart}, macA},
		{"an event does not teach its address (only Learn does)", func(l *Log) { l.Record(Event{MAC: macA, IP: ipA, Stage: StageAck}) }, Event{IP: ipA, Stage: StageKernel}, "192.0.2.10"},
		{"a claimed MAC never picks the timeline", func(*Log) {}, Event{IP: ipA, Claimed: macA, Stage: StageHTTPError}, "192.0.2.10"},
		{"a claimed MAC known elsewhere is a mismatch on the address", func(l *Log) { l.Learn(netip.MustParseAddr("192.0.2.99"), macA) },
			Event{IP: ipA, Claimed: macA, Stage: StageClaimMismatch}, "192.0.2.10"},
		{"a claim joins the address's learned machine", func(l *Log) { l.Learn(ipA, macB) }, Event{IP: ipA, Claimed: macA, Stage: StageHTTPError}, macB},
		{"IPv4-mapped address is the same machine", func(l *Log) { l.Learn(ipA, macA) }, Event{IP: mapped, Stage: StageHTTP}, macA},
		{"latest MAC for an address wins", func(l *Log) { l.Learn(ipA, macA); l.Learn(ipA, macB) }, Event{IP: ipA, Stage: StageHTTP}, macB},
		{"unknown address is keyed by the address", func(*Log) {}, Event{IP: ipA, Stage: StageTFTPError}, "192.0.2.10"},
		{"an explicit MAC is kept", func(l *Log) { l.Learn(ipA, macA) }, Event{MAC: macC, IP: ipA, Stage: StageScript}, macC},
		{"Learn ignores invalid input", func(l *Log) { l.Learn(netip.Addr{}, macA); l.Learn(ipA, "") }, Event{IP: ipA, Stage: StageHTTP}, "192.0.2.10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Log{Now: clock()}
			tc.setup(l)
			l.Record(tc.e)
			tl := l.Timeline(tc.key)
			i := slices.IndexFunc(tl, func(e Event) bool { return e.Stage == tc.e.Stage })
			if i < 0 {
				t.Fatalf("no %s event under %q; machines %v", tc.e.Stage, tc.key, l.Machines())
			}
			if e := tl[i]; tc.key != "192.0.2.10" && e.MAC != tc.key {
				t.Fatalf("event MAC %q, want %q", e.MAC, tc.key)
			}
		})
	}
	t.Run("MACForIP", func(t *testing.T) {
		var l Log
		if got := l.MACForIP(ipA); got != "" {
			t.Fatalf("MACForIP on an empty log = %q", got)
		}
		l.Learn(mapped, macA)
		if got := l.MACForIP(ipA); got != macA {
			t.Fatalf("MACForIP = %q, want %q", got, macA)
		}
	})
}

func TestRecordTime(t *testing.T) {
	now := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	l := &Log{Now: func() time.Time { return now }}
	l.Record(Event{MAC: macA, Stage: StageOffer})
	given := now.Add(-time.Hour)
	l.Record(Event{MAC: macA, Stage: StageAck, Time: given})
	tl := l.Timeline(macA)
	if !tl[0].Time.Equal(now) || !tl[1].Time.Equal(given) {
		t.Fatalf("times %v, %v; want Now() when unset and the given time kept", tl[0].Time, tl[1].Time)
	}
	var zero Log
	zero.Record(Event{MAC: macA})
	if zero.Timeline(macA)[0].Time.IsZero() {
		t.Fatal("zero Log left Time unset")
	}
}

func TestTimelineIsACopy(t *testing.T) {
	var l Log
	l.Record(Event{MAC: macA, Detail: "x"})
	tl := l.Timeline(macA)
	tl[0].Detail = "changed"
	if l.Timeline(macA)[0].Detail != "x" {
		t.Fatal("Timeline returned the log's own slice")
	}
	if l.Timeline("52:54:00:ff:ff:ff") != nil {
		t.Fatal("unknown machine has a timeline")
	}
}

func TestSubscribe(t *testing.T) {
	l := &Log{Now: clock()}
	fast, stopFast := l.Subscribe(0)
	slow, stopSlow := l.Subscribe(1)
	const n = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			l.Record(Event{MAC: macA, Stage: StageOffer, Detail: fmt.Sprint(i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a subscriber that does not read")
	}
	for i := 0; i < n; i++ {
		e := <-fast
		if e.Detail != fmt.Sprint(i) || e.MAC != macA || e.Time.IsZero() {
			t.Fatalf("fast subscriber event %d = %+v", i, e)
		}
	}
	if e := <-slow; e.Detail != "0" {
		t.Fatalf("slow subscriber's first event %+v, want the first recorded", e)
	}
	if len(slow) != 0 {
		t.Fatalf("slow subscriber has %d more buffered, want the rest dropped", len(slow))
	}
	stopSlow()
	stopSlow() // twice is harmless
	if _, ok := <-slow; ok {
		t.Fatal("channel open after unsubscribe")
	}
	l.Record(Event{MAC: macA, Stage: StageAck}) // must not send on the closed channel
	if e := <-fast; e.Stage != StageAck {
		t.Fatalf("fast subscriber got %+v after the other left", e)
	}
	stopFast()
	if _, ok := <-fast; ok {
		t.Fatal("channel open after unsubscribe")
	}
}

func TestConcurrentRecord(t *testing.T) {
	l := &Log{PerMachine: 8}
	ch, stop := l.Subscribe(16)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
			for i := 0; i < 200; i++ {
				l.Learn(ip, fmt.Sprintf("52:54:00:00:00:%02x", g))
				l.Record(Event{IP: ip, Stage: StageTFTPDone})
				_ = l.Machines()
				_ = l.Timeline(fmt.Sprintf("52:54:00:00:00:%02x", g))
			}
		}()
	}
	wg.Wait()
	stop()
	for range ch {
	}
	if got := len(l.Machines()); got != 4 {
		t.Fatalf("%d machines, want 4: %v", got, l.Machines())
	}
	for _, m := range l.Machines() {
		if n := len(l.Timeline(m)); n != 8 {
			t.Fatalf("%s kept %d events, want 8", m, n)
		}
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l := &Log{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	l.Record(Event{MAC: macA, IP: ipA, Stage: StageKernel, Detail: "vmlinuz", Bytes: 42, Dur: time.Second})
	out := buf.String()
	for _, want := range []string{"boot event", "mac=" + macA, "stage=kernel", "ip=192.0.2.10", "detail=vmlinuz", "bytes=42", "duration=1s"} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %q: %s", want, out)
		}
	}
	Discard.Record(Event{MAC: macA}) // must not panic
}

func TestEventJSON(t *testing.T) {
	e := Event{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), MAC: macA, Stage: StageOffer}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2026-11-01T00:00:00Z","mac":"52:54:00:00:00:0a","stage":"dhcp-offer"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s (zero ip, detail, bytes, duration omitted)", b, want)
	}
	e.IP, e.Bytes = ipA, 7
	b, _ = json.Marshal(e)
	if !strings.Contains(string(b), `"ip":"192.0.2.10"`) || !strings.Contains(string(b), `"bytes":7`) {
		t.Fatalf("JSON %s lacks ip or bytes", b)
	}
}

// TestClaimMismatch is finding 4 of issue 13: a request from one machine's
// address that names another machine in its URL lands on the requester's
// timeline with a claim-mismatch beside it, never on the victim's.
func TestClaimMismatch(t *testing.T) {
	var buf bytes.Buffer
	l := &Log{Now: clock(), Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	attacker := netip.MustParseAddr("192.0.2.66")
	l.Learn(ipA, macA)
	l.Learn(attacker, macB)
	l.Record(Event{MAC: macA, Stage: StageAck})
	for i := 0; i < 3; i++ {
		l.Record(Event{IP: attacker, Claimed: macA, Stage: StageHTTPError, Detail: "GET /boot/x"})
	}
	l.Record(Event{IP: ipA, Claimed: macA, Stage: StageScript}) // the victim's own request
	if got := stageList(l.Timeline(macA)); got != "dhcp-ack,script" {
		t.Fatalf("victim's timeline %s, want only its own events", got)
	}
	if got := stageList(l.Timeline(macB)); got != "http-error,claim-mismatch,http-error,claim-mismatch,http-error,claim-mismatch" {
		t.Fatalf("attacker's timeline %s", got)
	}
	if e := l.Timeline(macA)[1]; e.Claimed != "" {
		t.Fatalf("a matching claim is kept as %q, want cleared", e.Claimed)
	}
	if n := l.Stats().ClaimMismatch; n != 3 {
		t.Fatalf("ClaimMismatch = %d, want 3", n)
	}
	if n := strings.Count(buf.String(), "names another machine"); n != 1 {
		t.Fatalf("%d mismatch warnings logged, want 1 per interval:\n%s", n, buf.String())
	}
}

func stageList(es []Event) string {
	var s []string
	for _, e := range es {
		s = append(s, string(e.Stage))
	}
	return strings.Join(s, ",")
}

// TestBounds is findings 1 and 6 of issue 13: details are cut, the bytes of
// all timelines and the learned addresses stay within their limits.
func TestBounds(t *testing.T) {
	t.Run("detail cut", func(t *testing.T) {
		var buf bytes.Buffer
		l := &Log{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
		l.Record(Event{MAC: macA, Stage: StageHTTPError, Detail: "GET /boot/" + strings.Repeat("B", 1<<20)})
		d := l.Timeline(macA)[0].Detail
		if len(d) > MaxDetail || !strings.HasSuffix(d, "(1048586 bytes)") {
			t.Fatalf("detail of %d bytes, ends %q", len(d), d[max(0, len(d)-40):])
		}
		if buf.Len() > 2*MaxDetail {
			t.Fatalf("logged %d bytes for one event", buf.Len())
		}
	})
	t.Run("bytes", func(t *testing.T) {
		l := &Log{MaxBytes: 100 << 10, Now: clock()}
		big := strings.Repeat("x", 400)
		for i := 0; i < 5000; i++ {
			l.Record(Event{MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&255), Stage: StageHTTPError, Detail: big})
			if st := l.Stats(); st.Bytes > l.MaxBytes {
				t.Fatalf("after %d events: %d bytes kept, limit %d", i+1, st.Bytes, l.MaxBytes)
			}
		}
		st := l.Stats()
		if st.Evicted == 0 || st.Machines == 0 {
			t.Fatalf("stats %+v: want machines evicted and the newest kept", st)
		}
		if l.Timeline("02:00:00:00:13:87") == nil {
			t.Fatal("the newest machine was forgotten")
		}
		var sum int64
		for _, m := range l.Machines() {
			for _, e := range l.Timeline(m) {
				sum += eventSize(&e)
			}
		}
		if sum != st.Bytes {
			t.Fatalf("accounted %d bytes, events add up to %d", st.Bytes, sum)
		}
	})
	t.Run("one machine over the budget keeps its newest", func(t *testing.T) {
		l := &Log{MaxBytes: 1000, PerMachine: 4}
		for i := 0; i < 10; i++ {
			l.Record(Event{MAC: macA, Stage: StageHTTP, Detail: strings.Repeat("y", 400)})
		}
		if n := len(l.Timeline(macA)); n != 4 {
			t.Fatalf("kept %d events, want the ring's 4", n)
		}
	})
	t.Run("addresses", func(t *testing.T) {
		l := &Log{MaxAddresses: 100}
		for i := 0; i < 66000; i++ {
			l.Learn(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), macA)
		}
		if n := l.Stats().Addresses; n != 100 {
			t.Fatalf("%d addresses kept, want 100", n)
		}
		if len(l.byMAC) != 1 {
			t.Fatalf("%d MACs mapped back, want 1", len(l.byMAC))
		}
		if l.MACForIP(netip.AddrFrom4([4]byte{10, 0, 0, 0})) != "" {
			t.Fatal("the oldest address was kept")
		}
		last := 65999
		if l.MACForIP(netip.AddrFrom4([4]byte{10, byte(last >> 16), byte(last >> 8), byte(last)})) != macA {
			t.Fatal("the newest address was forgotten")
		}
	})
}

// TestLogRate: a flood of events is kept but logged at most LogRate a
// second, and the next second says how many lines were left out.
func TestLogRate(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	l := &Log{LogRate: 10, Logger: slog.New(slog.NewTextHandler(&buf, nil)), Now: func() time.Time { return now }}
	for i := 0; i < 1000; i++ {
		l.Record(Event{MAC: macA, Stage: StageDiscover})
	}
	if n := strings.Count(buf.String(), "boot event"); n != 10 {
		t.Fatalf("%d events logged in one second, want 10", n)
	}
	now = now.Add(time.Second)
	l.Record(Event{MAC: macA, Stage: StageOffer})
	if !strings.Contains(buf.String(), "boot events not logged") || !strings.Contains(buf.String(), "events=990") {
		t.Fatalf("no summary of the 990 events left out:\n%s", buf.String())
	}
	if n := len(l.Timeline(macA)); n != DefaultPerMachine {
		t.Fatalf("kept %d events, want every event kept up to the ring's %d", n, DefaultPerMachine)
	}
}

// TestLearnAdoptsEarlierEvents: a machine fetched its script a moment before
// pxed read the DHCP packet naming its address; once learned, those events
// join its timeline, in time order, except those that claimed another
// machine.
func TestLearnAdoptsEarlierEvents(t *testing.T) {
	l := &Log{Now: clock()}
	l.Record(Event{MAC: macA, Stage: StageOffer})
	l.Record(Event{IP: ipA, Claimed: macA, Stage: StageScript})
	l.Record(Event{IP: ipA, Claimed: macB, Stage: StageHTTPError})
	l.Record(Event{IP: ipA, Stage: StageTFTPDone})
	l.Learn(ipA, macA)
	l.Record(Event{IP: ipA, Claimed: macA, Stage: StageKernel})
	if got := stageList(l.Timeline(macA)); got != "dhcp-offer,script,tftp-done,kernel" {
		t.Fatalf("timeline %s", got)
	}
	if got := stageList(l.Timeline("192.0.2.10")); got != "http-error" {
		t.Fatalf("the address keeps %s, want only the event claiming another machine", got)
	}
	var sum int64
	for _, m := range l.Machines() {
		for _, e := range l.Timeline(m) {
			sum += eventSize(&e)
		}
	}
	if st := l.Stats(); st.Bytes != sum || st.Machines != 2 {
		t.Fatalf("stats %+v, events add up to %d bytes", st, sum)
	}
}
