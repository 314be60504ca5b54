package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDeadLetterPage reads the example's dead letters (its poison orders)
// from the debug page, as JSON and in headless Chromium, and checks that
// replaying from the page is off, as it is unless turned on.
func TestDeadLetterPage(t *testing.T) {
	page := strings.TrimSuffix(need(t, "EVENTSTREAM_DEBUG_URL"), "/") + "/deadletters"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type deadLetter struct {
		ID, Topic, Group, Reason string
		ErrorType                string `json:"error_type"`
		TraceID                  string `json:"trace_id"`
	}
	var dls []deadLetter
	for {
		code, err := getJSON(ctx, page+"?format=json&topic=order.created", &dls)
		if err == nil && code == http.StatusOK && len(dls) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no dead letter of order.created on %s (last: %d, %v)", page, code, err)
		}
		time.Sleep(2 * time.Second)
	}
	d := dls[0]
	if d.Topic != "order.created" || d.Group == "" || d.Reason == "" || d.ErrorType == "" || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(d.TraceID) {
		t.Fatalf("dead letter %+v", d)
	}
	t.Logf("%d dead letter(s); newest: %s of group %s, %s (%s), trace %s", len(dls), d.ID, d.Group, d.Reason, d.ErrorType, d.TraceID)

	script, err := filepath.Abs("../scripts/chromium.sh")
	if err != nil {
		t.Fatal(err)
	}
	view := page + "?topic=order.created"
	if out, err := exec.Command(script, "console", view).CombinedOutput(); err != nil {
		t.Fatalf("console errors on %s: %v\n%s", view, err, out)
	}
	dom, err := exec.Command(script, "dom", view).Output()
	if err != nil {
		t.Fatalf("dom: %v", err)
	}
	for _, want := range []string{d.ID, d.TraceID, "Replay from this page is off"} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("the dead-letter view does not show %q", want)
		}
	}

	resp, err := http.PostForm(page+"/replay", url.Values{"topic": {"order.created"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("replay from the page answered %d; it is off unless turned on", resp.StatusCode)
	}
}
