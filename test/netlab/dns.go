package netlab

import (
	"context"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsNames are the names the lab's DNS knows: the store, and the kubernetes Service as a pod names it.
var dnsNames = map[string]string{StoreName: StoreAddress, KubernetesName: KubernetesClusterIP}

// KubernetesName is the kubernetes Service's name as a pod resolves it.
const KubernetesName = "kubernetes.default.svc."

// ServeDNS answers A queries for StoreName and KubernetesName, and every other name with NXDOMAIN, on
// UDP at the node's address, until ctx ends. It runs in the node namespace, where a cluster's DNS
// would be reached.
func ServeDNS(ctx context.Context) error {
	conn, err := net.ListenPacket("udp", net.JoinHostPort(NodeAddress, strconv.Itoa(DNSPort)))
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go func() {
		buffer := make([]byte, 512)
		for {
			n, peer, err := conn.ReadFrom(buffer)
			if err != nil {
				return
			}
			if answer, err := answerDNS(buffer[:n]); err == nil {
				_, _ = conn.WriteTo(answer, peer)
			}
		}
	}()
	return nil
}

func answerDNS(query []byte) ([]byte, error) {
	var parser dnsmessage.Parser
	header, err := parser.Start(query)
	if err != nil {
		return nil, err
	}
	question, err := parser.Question()
	if err != nil {
		return nil, err
	}
	header.Response, header.Authoritative, header.RCode = true, true, dnsmessage.RCodeSuccess
	address, known := dnsNames[question.Name.String()]
	if !known {
		header.RCode = dnsmessage.RCodeNameError
	}
	builder := dnsmessage.NewBuilder(nil, header)
	if err := builder.StartQuestions(); err != nil {
		return nil, err
	}
	if err := builder.Question(question); err != nil {
		return nil, err
	}
	if err := builder.StartAnswers(); err != nil {
		return nil, err
	}
	if known && question.Type == dnsmessage.TypeA {
		resource := dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5}
		if err := builder.AResource(resource, dnsmessage.AResource{A: netip.MustParseAddr(address).As4()}); err != nil {
			return nil, err
		}
	}
	return builder.Finish()
}
