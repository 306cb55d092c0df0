"""The built-in homelab services: one module each, declaring a `ServiceSpec`.

Each function takes typed arguments and returns the declaration; the generic
`components.docker.service.Service` component turns it into resources, and the proxy,
monitoring, backup and landing modules derive their configuration from declarations only.
"""
