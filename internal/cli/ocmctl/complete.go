package ocmctl

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/tree"
)

// Shell completion (ocm-ctl completion bash|zsh|fish|powershell, cobra's)
// asks the server for node ids and stream URLs, so that
// `ocm-ctl kick <TAB>` offers the relays connected now. A server that
// cannot be reached completes nothing; completion never prints an error.

// completeNodes completes a node id (and "origin" when withOrigin).
func (o *ctlOptions) completeNodes(withOrigin bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		if withOrigin {
			out = append(out, "origin")
		}
		if c, err := o.client(); err == nil {
			if nodes, _, err := c.Nodes(completionContext(cmd)); err == nil {
				for _, n := range nodes {
					out = append(out, n.ID)
				}
			}
		}
		return prefixed(out, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeStreams completes a stream's origin URL.
func (o *ctlOptions) completeStreams(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	if c, err := o.client(); err == nil {
		if streams, _, err := c.Streams(completionContext(cmd)); err == nil {
			for _, s := range streams {
				out = append(out, s.Stream)
			}
		}
	}
	return prefixed(out, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// firstArg completes only the first positional argument with fn.
func firstArg(fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

func completePolicies(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, p := range tree.Policies {
		out = append(out, string(p))
	}
	return prefixed(out, toComplete), cobra.ShellCompDirectiveNoFileComp
}

func completeOutputs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return prefixed(outputs(cmd), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completionContext bounds the server's answer: a shell waits for it.
func completionContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func prefixed(all []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
