"""The landing page: a generated page that lists every enabled service with its URL."""

from __future__ import annotations

from dataclasses import dataclass

from components.docker.spec import Basics, ContainerSpec, FileUpload, Route, ServiceSpec, http_check
from components.homelab.images import CONTRACTS
from components.templating import render


@dataclass(frozen=True)
class Link:
    title: str
    url: str
    host: str = ""


def service_links(specs: list[ServiceSpec], scheme: str) -> list[Link]:
    """One link per HTTP route of the given services, sorted by title."""
    links = [
        Link(spec.title or spec.name, f"{scheme}://{route.fqdn}/", spec.host)
        for spec in specs
        for route in spec.url_routes()
    ]
    return sorted(links, key=lambda link: (link.title.lower(), link.url))


@dataclass(frozen=True)
class LandingArgs:
    basics: Basics
    links: tuple[Link, ...]
    title: str = "Homelab"


def landing_page(a: LandingArgs) -> str:
    return render(__file__, "landing.html.j2", title=a.title, links=a.links)


def landing(a: LandingArgs) -> ServiceSpec:
    b = a.basics
    container = ContainerSpec(
        name="landing",
        image=b.image,
        privileges=CONTRACTS["landing"].privileges(),
        uploads=(FileUpload("/usr/share/nginx/html/index.html", landing_page(a)),),
        healthcheck=http_check("http://127.0.0.1/"),
        memory_mb=b.memory(64),
    )
    return ServiceSpec(
        name=b.name or "landing",
        kind="LandingPage",
        host=b.host,
        containers=(container,),
        routes=(Route(b.fqdn, "landing", 80),) if b.fqdn else (),
        restart=b.restart,
        title="Home",
    )
