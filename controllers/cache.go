package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions returns the manager cache options the controller expects: Secrets
// are cached only when of type kubernetes.io/tls, the only type a listener
// certificate may have, so that a node's controller does not hold every Secret of
// the cluster. Managed fields are dropped from every cached object.
func CacheOptions() cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Field: fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS))},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}
