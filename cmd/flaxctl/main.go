// Command flaxctl is Flax's operator CLI. It translates Gateway API and Flax YAML
// offline with the controller's own translator, validates standalone dataplane
// configs, shows the status of Flax's Gateway API objects and of every node's
// dataplane, and dumps the configuration a node's dataplane serves. Installed as
// kubectl-flax, it is also a kubectl plugin: `kubectl flax status`.
//
// It shares the translator (controllers/translate), the node Lease format
// (controllers/nodes) and the snapshot contract (api/dataplane/v1) with the
// controller; it talks to dataplanes only over their admin HTTP server, and
// imports nothing of dataplane/.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// exitError is an error whose message has been printed already (validate's field
// errors): main exits 1 without printing it again.
type exitError struct{ err error }

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func main() {
	if err := run(argsOf(os.Args[0], os.Args[1:]), os.Stdin, os.Stdout, os.Stderr); err != nil {
		var printed exitError
		if !errors.As(err, &printed) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", commandName(), err)
		}
		os.Exit(1)
	}
}

// argsOf returns the arguments to run for a program called as argv0 with args:
// kubectl completes "kubectl flax ..." by running kubectl_complete-flax with the
// words typed so far, which is cobra's completion request.
func argsOf(argv0 string, args []string) []string {
	if filepath.Base(argv0) == "kubectl_complete-flax" {
		return append([]string{cobra.ShellCompRequestCmd}, args...)
	}
	return args
}

// commandName is how the user called flaxctl: "kubectl flax" as a kubectl plugin.
func commandName() string { return commandNameOf(os.Args[0]) }

// commandNameOf returns the command name of a program called as argv0.
func commandNameOf(argv0 string) string {
	if strings.HasPrefix(filepath.Base(argv0), "kubectl-") {
		return "kubectl flax"
	}
	return "flaxctl"
}

// run runs flaxctl with args.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.Execute()
}

// globals are the flags every command takes.
type globals struct {
	kubeconfig string
	context    string
	output     string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "flaxctl",
		Short: "Operate Flax, the Gateway API implementation",
		Long: `flaxctl operates Flax: it translates Gateway API and Flax YAML with the
controller's own translator (no cluster needed), validates standalone dataplane
configs, shows the status of Flax's GatewayClasses, Gateways, routes and policies
and of every node's dataplane, and dumps the configuration a node's dataplane
serves.

Installed as kubectl-flax on the PATH (make build puts it in bin/, with
kubectl_complete-flax for kubectl's shell completion), it is a kubectl plugin:
"kubectl flax status".

Commands that reach the cluster take --kubeconfig and --context as kubectl does
($KUBECONFIG, else ~/.kube/config, else the in-cluster config).`,
		Example: `  flaxctl translate -f config/samples -f config/samples/policies
  flaxctl validate -f examples/standalone.yaml
  flaxctl status
  flaxctl config dump --node node-1 --gateway demo/demo
  kubectl flax status -o yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if name := commandName(); name != "flaxctl" {
		// Usage lines and examples read "kubectl flax ..." for the plugin.
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: name}
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	pf.StringVar(&g.context, "context", "", "the kubeconfig context to use (default: its current context)")
	pf.StringVarP(&g.output, "output", "o", "", "output format: table, yaml or json (each command has its default)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		newTranslateCmd(g),
		newValidateCmd(g),
		newStatusCmd(g),
		newConfigCmd(g),
		newCompletionCmd(),
	)
	return root
}

// format returns the output format the user asked for, or def; it rejects
// formats other than table, yaml and json.
func (g *globals) format(def string) (string, error) {
	f := g.output
	if f == "" {
		f = def
	}
	switch f {
	case "table", "yaml", "json":
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q: use table, yaml or json", f)
}

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script of flaxctl for bash, zsh or fish.

Load it in the current shell, or install it where your shell looks for
completions.`,
		Example: `  source <(flaxctl completion bash)
  flaxctl completion zsh > "${fpath[1]}/_flaxctl"
  flaxctl completion fish > ~/.config/fish/completions/flaxctl.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return fmt.Errorf("unsupported shell %q: use bash, zsh or fish", args[0])
		},
	}
}
