"""Every container image of the homelab, pinned, in one table.

Override one per service with `image:` in the stack config. Tags are exact releases that
exist upstream; `tests/test_images.py` rejects `latest` and untagged references.
"""

IMAGES: dict[str, str] = {
    "portainer": "portainer/portainer-ce:2.33.6",
    "prometheus": "prom/prometheus:v3.5.0",
    "grafana": "grafana/grafana:12.3.1",
    "cadvisor": "gcr.io/cadvisor/cadvisor:v0.52.1",
    "node-exporter": "prom/node-exporter:v1.9.1",
    "haproxy": "haproxy:3.2.6-alpine",
    # The newest v2 release tag (github.com/offen/docker-volume-backup, tag v2.48.2; images are
    # pushed as offen/docker-volume-backup:<tag> for amd64, arm64 and arm/v7 by
    # .github/workflows/release.yml at that tag).
    "backup": "offen/docker-volume-backup:v2.48.2",
    "mattermost": "mattermost/mattermost-team-edition:10.11.8",
    "postgres": "postgres:17.6-alpine",
    "mysql": "mysql:8.4.6",
    "drupal": "drupal:11.2.3-php8.4-apache-bookworm",
    "web": "php:8.4.11-apache",
    "landing": "nginx:1.28.0-alpine",
}
