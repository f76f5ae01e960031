// Package deploy holds trustgate's Kubernetes manifests (kubernetes/) and Helm chart
// (helm/trustgate). It is its own module so that validating them against the Kubernetes API types
// adds nothing to trustgate's binary or its module's requirements; its tests decode every
// manifest strictly into k8s.io/api types and run helm lint and helm template.
package deploy
