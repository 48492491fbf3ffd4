// Command roundtrip measures the GOCACHEPROG round trip the way the go command's client
// (cmd/go/internal/cache/prog.go) pays it: JSON encoder, bufio flush per request, one reader
// goroutine decoding replies and handing them to the waiting caller over a channel.
//
//	roundtrip PROG        (GOCACHE: a warm cache; the first 1000 action ids are asked for)
//
// Per round: time to the handshake, 1000 sequential gets, the same 1000 from two goroutines
// (the go command's -p 2 on this machine), close, exit.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

type Req struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
}
type Resp struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

func main() {
	dir := os.Getenv("GOCACHE")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*-a"))
	sort.Strings(files)
	var ids [][]byte
	for _, f := range files {
		b, _ := hex.DecodeString(strings.TrimSuffix(filepath.Base(f), "-a"))
		ids = append(ids, b)
	}
	if len(ids) > 1000 {
		ids = ids[:1000]
	}
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		cmd := exec.Command(os.Args[1])
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		cmd.Start()
		bw := bufio.NewWriter(in)
		enc := json.NewEncoder(bw)
		dec := json.NewDecoder(out)
		var mu sync.Mutex
		inflight := map[int64]chan *Resp{}
		hs := make(chan *Resp, 1)
		inflight[0] = hs
		go func() {
			for {
				r := new(Resp)
				if err := dec.Decode(r); err != nil {
					return
				}
				mu.Lock()
				ch := inflight[r.ID]
				delete(inflight, r.ID)
				mu.Unlock()
				ch <- r
			}
		}()
		<-hs
		t1 := time.Now()
		var next int64
		var wmu sync.Mutex
		send := func(command string, id []byte) *Resp {
			ch := make(chan *Resp, 1)
			mu.Lock()
			next++
			n := next
			inflight[n] = ch
			mu.Unlock()
			wmu.Lock()
			enc.Encode(&Req{ID: n, Command: command, ActionID: id})
			bw.WriteByte('\n')
			bw.Flush()
			wmu.Unlock()
			return <-ch
		}
		hits := 0
		for _, id := range ids {
			if r := send("get", id); !r.Miss {
				hits++
			}
		}
		t2 := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < len(ids); i += 2 {
					send("get", ids[i])
				}
			}(w)
		}
		wg.Wait()
		t3 := time.Now()
		send("close", nil)
		in.Close()
		t4 := time.Now()
		cmd.Wait()
		fmt.Printf("handshake %v  seq %d gets %v (%.1f us/get, %d hits)  par2 %v (%.1f us/get) close %v exit %v\n", t1.Sub(t0), len(ids), t2.Sub(t1), float64(t2.Sub(t1).Microseconds())/float64(len(ids)), hits, t3.Sub(t2), float64(t3.Sub(t2).Microseconds())/float64(len(ids)), t4.Sub(t3), time.Since(t4))
	}
}
