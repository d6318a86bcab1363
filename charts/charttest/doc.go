// Package charttest tests the Helm chart in charts/flax and keeps it in step with the
// rest of the repository. It runs bin/helm (built by `make tools`; the tests skip when it
// is missing) to lint the chart and render it for a set of value files, and compares each
// rendering, and the NOTES it prints, with a golden file in testdata/ (`go test
// ./charts/charttest/ -update` rewrites them; read the diff before committing). It also
// checks that values.schema.json rejects bad values, that rendered objects decode strictly
// into their Kubernetes Go types, that the chart's RBAC equals config/rbac/, that every
// value in values.yaml carries a comment and a row in the chart README (and the other way
// round), that the samples in config/samples line up with the chart's defaults, and that
// the local cluster's sample (config/samples/demo) decodes strictly and lines up.
package charttest
