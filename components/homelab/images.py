"""Every container image of the homelab, pinned, in one table.

Override one per service with `image:` in the stack config. Tags are exact releases that
exist upstream; `tests/test_images.py` rejects `latest` and untagged references.
"""

IMAGES: dict[str, str] = {
    "portainer": "portainer/portainer-ce:2.33.6",
    "prometheus": "prom/prometheus:v3.5.0",
    # prometheus/alertmanager tag v0.34.0 (CHANGELOG "0.34.0 / 2026-08-16"), published to
    # Docker Hub as prom/alertmanager by its release workflow (promci publish_release).
    "alertmanager": "prom/alertmanager:v0.34.0",
    # prometheus/blackbox_exporter tag v0.28.0 (Makefile: DOCKER_IMAGE_NAME blackbox-exporter).
    "blackbox-exporter": "prom/blackbox-exporter:v0.28.0",
    "grafana": "grafana/grafana:12.3.1",
    "cadvisor": "gcr.io/cadvisor/cadvisor:v0.52.1",
    "node-exporter": "prom/node-exporter:v1.9.1",
    "haproxy": "haproxy:3.2.6-alpine",
    # Volumerize is no longer maintained upstream; 1.7 is its last release line.
    "volumerize": "blacklabelops/volumerize:1.7",
    "mattermost": "mattermost/mattermost-team-edition:10.11.8",
    "postgres": "postgres:17.6-alpine",
    "mysql": "mysql:8.4.6",
    "drupal": "drupal:11.2.3-php8.4-apache-bookworm",
    "web": "php:8.4.11-apache",
    "landing": "nginx:1.28.0-alpine",
}
