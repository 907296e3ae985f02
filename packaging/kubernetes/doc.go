// Package kubernetes holds the tests of the Kubernetes deployment: the
// Helm chart (chart/nginx-shipper), the plain manifest rendered from it
// (nginx-shipper.yaml) and, in imagebuild/, the container image builder.
// The tests decode every rendered object strictly into the Kubernetes API
// types; this package is not linked into the binary.
package kubernetes
