// Command certmanager runs the real cert-manager controllers that backupguard's tests rely on against
// a test kube-apiserver: the Issuer/ClusterIssuer, CertificateRequest (approver, self-signed and CA
// issuers) and Certificate controllers, and the CA injector for webhook configurations. It is built
// from cert-manager's public packages by test/tools/ensure-certmanager.sh, which also copies the
// cert-manager CRDs next to the binary.
//
// It logs to stderr, prints "cert-manager ready" on stdout once its informers are synced, and exits
// cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"

	// Each controller package registers its constructor with controller.Known() when imported.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The issuers and clusterissuers controllers find the issuer implementations here.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

const modulePath = "github.com/cert-manager/cert-manager"

// controllers are the cert-manager controllers this runner starts, by their registered names.
var controllers = []string{
	"issuers",
	"clusterissuers",
	"certificaterequests-approver",
	"certificaterequests-issuer-selfsigned",
	"certificaterequests-issuer-ca",
	"certificates-trigger",
	"certificates-issuing",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-readiness",
	"certificates-revision-manager",
}

type options struct {
	kubeconfig               string
	clusterResourceNamespace string
	workers                  int
	qps                      float64
	burst                    int
	minBackoff, maxBackoff   time.Duration
	ownerRef                 bool
}

func main() {
	// Not flag.CommandLine: controller-runtime registers its own --kubeconfig there.
	flags := flag.NewFlagSet("certmanager", flag.ExitOnError)
	var o options
	var printCRDDir bool
	flags.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to run against (required)")
	flags.StringVar(&o.clusterResourceNamespace, "cluster-resource-namespace", "cert-manager",
		"namespace holding the Secrets that ClusterIssuers refer to")
	flags.IntVar(&o.workers, "workers", 5, "workers per controller")
	flags.Float64Var(&o.qps, "kube-api-qps", 100, "client-side rate limit (the controllers ignore it when the API server has priority and fairness)")
	flags.IntVar(&o.burst, "kube-api-burst", 200, "client-side burst (likewise)")
	flags.DurationVar(&o.minBackoff, "certificate-request-minimum-backoff", time.Hour,
		"wait after a failed CertificateRequest before a Certificate is retried (cert-manager's default; 0 retries at once)")
	flags.DurationVar(&o.maxBackoff, "certificate-request-maximum-backoff", 32*time.Hour,
		"upper bound of that wait as it doubles with each consecutive failure (cert-manager's default)")
	flags.BoolVar(&o.ownerRef, "enable-certificate-owner-ref", false,
		"make each Certificate the owner of its Secret, so deleting the Certificate deletes the Secret")
	flags.BoolVar(&printCRDDir, "print-crd-dir", false, "print the directory holding the cert-manager CRDs and exit")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", "2")
	flags.Var(klogFlags.Lookup("v").Value, "v", "log verbosity: 2 is cert-manager's info level, 4 debug, 0 errors only")
	_ = flags.Parse(os.Args[1:])

	if printCRDDir {
		dir, err := crdDir()
		if err != nil {
			fmt.Fprintln(os.Stderr, "certmanager:", err)
			os.Exit(1)
		}
		fmt.Println(dir)
		return
	}
	if o.kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "certmanager: --kubeconfig is required")
		os.Exit(2)
	}

	log := klog.Background().WithName("cert-manager")
	ctrl.SetLogger(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second signal kills at once
	ctx = logf.NewContext(ctx, log)

	if err := run(ctx, o); err != nil {
		log.Error(err, "cert-manager stopped")
		klog.Flush()
		os.Exit(1)
	}
	log.Info("cert-manager stopped")
	klog.Flush()
}

// run starts everything, reports ready, and returns once ctx is done and everything has stopped, or
// as soon as one part fails.
func run(parent context.Context, o options) error {
	ctx, cancel := context.WithCancel(parent)
	log := logf.FromContext(ctx)
	var wg sync.WaitGroup
	var shutdown []func()
	defer func() {
		cancel()
		wg.Wait()
		for _, f := range shutdown {
			f()
		}
	}()
	errs := make(chan error, len(controllers)+1)
	fail := func(err error) {
		if ctx.Err() != nil { // stopping anyway: an error now is a consequence, not a cause
			log.V(logf.DebugLevel).Info("error while stopping", "error", err.Error())
			return
		}
		errs <- err
		cancel()
	}

	// The certificate controllers.
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         o.kubeconfig,
		KubernetesAPIQPS:   float32(o.qps),
		KubernetesAPIBurst: o.burst,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        o.clusterResourceNamespace,
			ClusterIssuerAmbientCredentials: false,
			IssuerAmbientCredentials:        false,
		},
		CertificateOptions: controller.CertificateOptions{
			EnableOwnerRef: o.ownerRef,
			// cert-manager's default: copy every annotation but kubectl's, Flux's and Argo CD's.
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: o.minBackoff,
			CertificateRequestMaximumBackoffDuration: o.maxBackoff,
		},
	})
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	known := controller.Known()
	for _, name := range controllers {
		constructor, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %q is not registered", name)
		}
		// The constructor registers the controller's informers with the shared factories.
		instance, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("constructing controller %s: %w", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.V(logf.DebugLevel).Info("starting controller", "controller", name)
			if err := instance.Run(o.workers, ctx); err != nil {
				fail(fmt.Errorf("controller %s: %w", name, err))
			}
		}()
	}
	// Only now, with every controller's informers requested, start the factories.
	cmctx, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	cmctx.SharedInformerFactory.Start(ctx.Done())
	cmctx.KubeSharedInformerFactory.Start(ctx.Done())
	shutdown = append(shutdown, cmctx.SharedInformerFactory.Shutdown, cmctx.KubeSharedInformerFactory.Shutdown)

	// The CA injector.
	manager, err := newInjector(ctx, o)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := manager.Start(ctx); err != nil {
			fail(fmt.Errorf("cainjector: %w", err))
		}
	}()

	if err := waitSynced(ctx, cmctx, manager.GetCache()); err != nil && parent.Err() == nil {
		cancel()
		wg.Wait()
		if first := firstError(errs); first != nil {
			return first
		}
		return err
	}
	if ctx.Err() == nil {
		log.Info("informers synced")
		fmt.Println("cert-manager ready")
	}

	<-ctx.Done()
	log.Info("shutting down")
	cancel()
	wg.Wait()
	return firstError(errs)
}

// newInjector sets up cert-manager's cainjector on a controller-runtime manager, injecting into
// ValidatingWebhookConfigurations and MutatingWebhookConfigurations only.
func newInjector(ctx context.Context, o options) (ctrl.Manager, error) {
	config, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", o.kubeconfig, err)
	}
	config = util.RestConfigWithUserAgent(config, "cainjector")
	config.QPS, config.Burst = float32(o.qps), o.burst // client-go's defaults (5 and 10) are zero values
	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	manager, err := ctrl.NewManager(config, ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true},
		// As upstream: Secrets are read straight from the API server, and watched as metadata only.
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, fmt.Errorf("creating the cainjector manager: %w", err)
	}
	err = cainjector.RegisterAllInjectors(ctx, manager, cainjector.SetupOptions{
		EnableCertificatesDataSource: true, // cert-manager.io/inject-ca-from
		EnabledReconcilersFor: map[string]bool{
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.APIServiceName:                     false,
			cainjector.CustomResourceDefinitionName:       false,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("registering the injectors: %w", err)
	}
	return manager, nil
}

// waitSynced waits for the certificate controllers' informers and the injectors' ones. Getting an
// informer from the manager's cache blocks until it has synced; the injectors' controllers share them.
func waitSynced(ctx context.Context, cmctx *controller.Context, injectorCache cache.Cache) error {
	for name, synced := range cmctx.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			return fmt.Errorf("informer for %v did not sync", name)
		}
	}
	for name, synced := range cmctx.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			return fmt.Errorf("informer for %s did not sync", name)
		}
	}
	secretMetadata := &metav1.PartialObjectMetadata{}
	secretMetadata.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	for _, object := range []client.Object{
		&admissionregistrationv1.ValidatingWebhookConfiguration{},
		&admissionregistrationv1.MutatingWebhookConfiguration{},
		&cmapi.Certificate{},
		secretMetadata,
	} {
		if _, err := injectorCache.GetInformer(ctx, object); err != nil {
			return fmt.Errorf("waiting for the cainjector's informers: %w", err)
		}
	}
	return ctx.Err()
}

func firstError(errs chan error) error {
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// crdDir is crds/ next to the binary, where ensure-certmanager.sh copies the CRDs of the cert-manager
// version it was built from.
func crdDir() (string, error) {
	executable, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(executable), "crds")
	if _, err := os.Stat(filepath.Join(dir, "cert-manager.io_certificates.yaml")); err != nil {
		return "", fmt.Errorf("no CRDs next to this binary (build it with test/tools/ensure-certmanager.sh; "+
			"by hand, they are in deploy/crds of `go list -m -f '{{.Dir}}' %s`): %w", modulePath, err)
	}
	return dir, nil
}
