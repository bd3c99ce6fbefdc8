package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// apiClient talks to a running pxed's API (`pxed machines`, `pxed
// profiles`): --server HOST:PORT or a URL, --token or PXED_TOKEN sent as
// a Bearer token.
type apiClient struct {
	server string
	token  string
	json   bool
}

func (c *apiClient) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "127.0.0.1:8080", "the pxed to talk to: its HTTP address HOST:PORT or a URL (https://…)")
	fs.StringVar(&c.token, "token", "", "API token, sent as Authorization: Bearer (default: $PXED_TOKEN)")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON answer")
}

// parseInterleaved parses flags given before, between or after the
// positional arguments, which it returns.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// do sends a request; in is encoded as the JSON body when not nil, the
// answer decoded into out when not nil. A non-2xx answer is an error with
// the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	base := c.server
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, usagef("--server %q: write the server's HTTP address, e.g. --server 127.0.0.1:8080", c.server)
	}
	p, q, _ := strings.Cut(path, "?")
	u = u.JoinPath(p)
	u.RawQuery = q
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tok := c.token
	if tok == "" {
		tok = os.Getenv("PXED_TOKEN")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", u.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, u.Path, termSafe(resp.Status), termSafe(e.Error))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s: bad answer: %w", u.Path, err)
		}
	}
	return b, nil
}

// printRaw prints a JSON answer as the server sent it, indented.
func printRaw(w io.Writer, b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		_, err = w.Write(b)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
