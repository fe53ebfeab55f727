// Package deploy holds no code: its tests check the deployment files under
// build/ against the server they deploy.
//
//   - build/Containerfile and build/image.sh: the image is built with podman
//     (or buildah), its configuration, layers and files are read from an OCI
//     archive, the server binary taken out of it is run, and the container
//     itself where containers can run (not in this project's sandbox, where
//     crun cannot set rlimits); the test says which it did.
//   - build/deploy/k8s: decoded strictly (unknown or duplicate fields are
//     errors) into the Kubernetes API types of k8s.io/api, then checked
//     against the image and the server: one replica, probe paths the
//     server answers, the database volume at the image's /data, ports,
//     user, and a termination grace period longer than the server's.
//   - build/deploy/compose.yaml: decoded strictly and checked the same way.
//
// The Kubernetes modules are imported by the tests only, so they stay out
// of the server binary.
package deploy
