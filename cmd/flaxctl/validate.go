package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	dataplanev1 "github.com/flaxlb/flax/api/dataplane/v1"
)

// validation is the result of validate, as -o yaml|json print it.
type validation struct {
	File          string       `json:"file"`
	Valid         bool         `json:"valid"`
	Listeners     int          `json:"listeners"`
	BackendGroups int          `json:"backendGroups"`
	Errors        []fieldError `json:"errors,omitempty"`
	ParseError    string       `json:"parseError,omitempty"`
}

// fieldError is one problem of a config.
type fieldError struct {
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

func newValidateCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Validate a standalone dataplane config (the YAML flax-dataplane run --config reads)",
		Long: `Validate reads a standalone dataplane config, the YAML form of the dataplane
snapshot (api/dataplane/v1) that flax-dataplane run --config serves, and checks it
as the dataplane does before serving it: the document must parse (unknown fields,
duplicate keys and values of the wrong type are errors), and the snapshot must
pass the dataplane's validation (names unique, references resolved, addresses,
hostnames, paths and regular expressions well-formed, TLS key pairs parsing...).

Every problem is printed with the path of its field; the exit code is 1 when
there is any. "-" reads standard input. A snapshot printed by flaxctl translate
is a valid config.`,
		Example: `  flaxctl validate -f examples/standalone.yaml
  flaxctl translate -f my-gateway.yaml | flaxctl validate -f -
  flaxctl validate -f config.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format("table")
			if err != nil {
				return err
			}
			v, err := validateFile(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if format == "table" {
				printValidation(w, v)
			} else if err := printData(w, format, v); err != nil {
				return err
			}
			if !v.Valid {
				return exitError{fmt.Errorf("%s is not valid", file)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the config file; - reads standard input")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	return cmd
}

// validateFile parses and validates the config at path ("-": stdin). The error
// is for a file that cannot be read; problems of the config are in the result.
func validateFile(path string, stdin io.Reader) (*validation, error) {
	v := &validation{File: path}
	var data []byte
	var err error
	if path == "-" {
		v.File = "<stdin>"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	snap, err := dataplanev1.Parse(data)
	if err != nil {
		v.ParseError = err.Error()
		return v, nil
	}
	v.Listeners, v.BackendGroups = len(snap.GetListeners()), len(snap.GetBackendGroups())
	// A hand-written config carries no hash; the dataplane computes it, as here.
	if snap.GetHash() == "" {
		snap.Hash = dataplanev1.Hash(snap)
	}
	err = dataplanev1.Validate(snap)
	v.Valid = err == nil
	for _, e := range flatten(err) {
		var fe *dataplanev1.FieldError
		if errors.As(e, &fe) {
			v.Errors = append(v.Errors, fieldError{Field: fe.Field, Detail: fe.Detail})
		} else {
			v.Errors = append(v.Errors, fieldError{Detail: e.Error()})
		}
	}
	return v, nil
}

// flatten returns the errors joined in err (errors.Join), or err alone.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// printValidation prints a validation as lines.
func printValidation(w io.Writer, v *validation) {
	switch {
	case v.ParseError != "":
		fmt.Fprintf(w, "%s: %s\n", v.File, v.ParseError)
	case v.Valid:
		fmt.Fprintf(w, "%s: valid (%d listeners, %d backend groups)\n", v.File, v.Listeners, v.BackendGroups)
	default:
		fmt.Fprintf(w, "%s: %d errors\n", v.File, len(v.Errors))
		for _, e := range v.Errors {
			if e.Field == "" {
				fmt.Fprintf(w, "  %s\n", e.Detail)
			} else {
				fmt.Fprintf(w, "  %s: %s\n", e.Field, e.Detail)
			}
		}
	}
}
