package netlab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The probes a stand-in runs, and what the store records for each request it answers.
const (
	// ProbeStoreNew is a request to the object store on a new connection.
	ProbeStoreNew = "store-new"
	// ProbeStoreKeepAlive is a request on the one connection a keep-alive client holds open.
	ProbeStoreKeepAlive = "store-keepalive"
	// ProbeAPIDirect reaches the kube-apiserver at the node's address and secure port.
	ProbeAPIDirect = "api-direct"
	// ProbeAPIClusterIP reaches it through the default/kubernetes ClusterIP, DNATed on the node.
	ProbeAPIClusterIP = "api-clusterip"
	// ProbeDNS resolves StoreName at the node's DNS responder.
	ProbeDNS = "dns"
	// StoreRequest is the store's record of a request it answered.
	StoreRequest = "request"
)

// Record is one line of a log: a probe's outcome, or a request the store answered.
type Record struct {
	Time time.Time `json:"t"`
	// Source is the pod that probed, or "store".
	Source string `json:"src"`
	Probe  string `json:"probe"`
	OK     bool   `json:"ok"`
	Err    string `json:"err,omitempty"`
	// Took is how long the probe took.
	Took time.Duration `json:"took,omitempty"`
	// Client, NewConnection and Connection describe a request the store answered: the peer's address,
	// whether it was the first request on its connection, and the connection's number.
	Client        string `json:"client,omitempty"`
	NewConnection bool   `json:"new,omitempty"`
	Connection    int64  `json:"conn,omitempty"`
}

// recordLog appends records to a file, one JSON object a line, each written at once so that a reader
// sees it while the writer runs.
type recordLog struct {
	mu   sync.Mutex
	file *os.File
}

func openRecordLog(path string) (*recordLog, error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &recordLog{file: file}, nil
}

func (l *recordLog) write(record Record) {
	line, _ := json.Marshal(record)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.file.Write(append(line, '\n'))
}

// ReadRecords reads a log written by a stand-in or the store; a last line still being written is
// left out, and a log not started yet is empty.
func ReadRecords(path string) ([]Record, error) {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var records []Record
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		var record Record
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			continue
		}
		records = append(records, record)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return records, nil
}
