package main

import (
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/leaderelection"
)

// leaderElectionTimings are the Lease timings, named and defaulted as kube-controller-manager's
// --leader-elect-* flags and controller-runtime's manager options (15s, 10s, 2s). A replica killed
// without releasing the Lease (SIGKILL, a lost node) is replaced only once the Lease expires, so the
// lease duration bounds how long the window and the label sync stand still.
type leaderElectionTimings struct {
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

func (l *leaderElectionTimings) addFlags(flags *pflag.FlagSet) {
	flags.DurationVar(&l.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long other replicas wait after the leader's last renewal before taking the Lease over")
	flags.DurationVar(&l.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives leadership up (and exits)")
	flags.DurationVar(&l.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often replicas try to acquire or renew the Lease")
}

// validate applies client-go's rules (leaderelection.NewLeaderElector), so a bad combination is a usage
// error at startup rather than a manager that fails to start.
func (l *leaderElectionTimings) validate() error {
	switch {
	case l.retryPeriod <= 0:
		return usageError("--leader-elect-retry-period must be above 0")
	case l.renewDeadline <= time.Duration(leaderelection.JitterFactor*float64(l.retryPeriod)):
		return usageError("--leader-elect-renew-deadline (%s) must be longer than %g times --leader-elect-retry-period (%s)", l.renewDeadline, leaderelection.JitterFactor, l.retryPeriod)
	case l.leaseDuration <= l.renewDeadline:
		return usageError("--leader-elect-lease-duration (%s) must be longer than --leader-elect-renew-deadline (%s)", l.leaseDuration, l.renewDeadline)
	}
	return nil
}
