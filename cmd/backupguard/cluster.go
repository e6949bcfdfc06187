package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// clusterFlags are the flags that choose a cluster, as kubectl has them: --kubeconfig and --context,
// resolved by client-go's standard loading rules ($KUBECONFIG, then ~/.kube/config, then the pod's
// service account).
type clusterFlags struct {
	kubeconfig string
	context    string
}

func (c *clusterFlags) addFlags(flags *pflag.FlagSet) {
	flags.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the pod's service account)")
	flags.StringVar(&c.context, "context", "", "kubeconfig context to use (default: its current context)")
}

// restConfig loads the client configuration the flags choose. Its error names the files it looked at.
func (c *clusterFlags) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.context}
	config, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	switch {
	case err == nil:
		if config.QPS == 0 {
			// As controller-runtime's GetConfig, which serve used before: no client-side rate limit,
			// the API server's priority and fairness does that job.
			config.QPS = -1
		}
		return config, nil
	case c.kubeconfig != "":
		return nil, fmt.Errorf("--kubeconfig %s: %w", c.kubeconfig, err)
	case clientcmd.IsEmptyConfig(err) || errors.Is(err, clientcmd.ErrEmptyConfig):
		return nil, fmt.Errorf("no cluster to talk to: no kubeconfig in %s and not in a pod; set --kubeconfig or $KUBECONFIG", strings.Join(rules.GetLoadingPrecedence(), ", "))
	}
	return nil, fmt.Errorf("kubeconfig (%s): %w", strings.Join(rules.GetLoadingPrecedence(), ", "), err)
}
