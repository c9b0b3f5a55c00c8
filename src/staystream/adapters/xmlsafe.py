"""Reading XML from the outside world without letting it hurt us.

Partner XML arrives from the network, so the parser must refuse what expat would otherwise
honour: DTDs (the root of billion-laughs and quadratic-blowup entity bombs), entity declarations
and external entities (`file:///etc/passwd`). defusedxml switches those off in expat; on top of
it a tree builder counts elements and depth as they open, so a document of a million nested
or sibling elements stops at the bound instead of building a tree that exhausts memory (and
whose deallocation can overflow the C stack). The body size is bounded before parsing by the
route (`max_body_bytes`).

Element and attribute names lose their namespace here: adapters match local names
(`RateAmountMessage`, not `{http://www.opentravel.org/OTA/2003/05}RateAmountMessage`), because
senders disagree on namespaces (OTA 2003/05 dialects, EQC AR 2007/02 and 2011/06) while the
local names are what the standards fix.

>>> root = parse_xml(b'<a xmlns="urn:x"><b c="1"/></a>')
>>> root.tag, root.find("b").get("c")
('a', '1')
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import defusedxml.ElementTree as DET
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

MAX_DEPTH = 32  # OTA and EQC messages nest about 8 deep; SOAP adds 2
MAX_ELEMENTS = 200_000  # ~750 days x 250 products of one-element updates
_DECLARED_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']{0,40})""")
SOAP_NAMESPACES = (
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
)


ET.register_namespace("soap", SOAP_NAMESPACES[0])
ET.register_namespace("soap12", SOAP_NAMESPACES[1])


class XMLRejected(ValueError):
    """The document is not XML we read: malformed, hostile (DTD, entities) or too large."""


class _Bounded(ET.TreeBuilder):
    """A tree builder that strips namespaces and stops at `MAX_DEPTH` / `MAX_ELEMENTS`."""

    def __init__(self, max_depth: int, max_elements: int) -> None:
        super().__init__()
        self.max_depth, self.max_elements = max_depth, max_elements
        self.depth = self.elements = 0
        self.root_namespace = ""
        self.line: Callable[[], int] = lambda: 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self.depth += 1
        self.elements += 1
        if self.depth > self.max_depth:
            raise XMLRejected(
                f"line {self.line()}: elements nest deeper than {self.max_depth} levels; "
                "expected a flat partner message"
            )
        if self.elements > self.max_elements:
            raise XMLRejected(
                f"line {self.line()}: more than {self.max_elements} elements; split the message"
            )
        namespace, _, local = tag.rpartition("}")
        if self.elements == 1:
            self.root_namespace = namespace.lstrip("{")
        if any("}" in name for name in attrs):
            attrs = {name.rpartition("}")[2]: value for name, value in attrs.items()}
        return super().start(local, attrs)

    def end(self, tag: str) -> ET.Element:
        self.depth -= 1
        return super().end(tag.rpartition("}")[2])


class Document:
    """A parsed message: its root (namespaces stripped), its namespace, and its SOAP wrapping."""

    def __init__(self, root: ET.Element, namespace: str, soap_namespace: str | None) -> None:
        self.root, self.namespace, self.soap_namespace = root, namespace, soap_namespace


def parse_xml(document: bytes, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS) -> ET.Element:
    """The root element of `document`; raises `XMLRejected` naming line and reason."""
    return parse_document(document, max_depth, max_elements).root


def parse_document(document: bytes, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS) -> Document:
    """Parse safely; a SOAP envelope is opened and its body's first element returned as root."""
    if not document.strip():
        raise XMLRejected("the body is empty; expected an XML document")
    builder = _Bounded(max_depth, max_elements)
    parser = DET.DefusedXMLParser(target=builder, forbid_dtd=True)
    expat = parser.parser
    builder.line = lambda: expat.CurrentLineNumber
    try:
        parser.feed(document)
        root = parser.close()
    except XMLRejected:
        raise
    except DTDForbidden:
        raise XMLRejected(
            f"line {expat.CurrentLineNumber}: a DTD (<!DOCTYPE>) is not accepted; DTDs carry "
            "entity bombs and external entities, and no partner message needs one"
        ) from None
    except EntitiesForbidden as exc:
        raise XMLRejected(
            f"line {expat.CurrentLineNumber}: entity declaration '{exc.name}' is not accepted"
        ) from None
    except ExternalReferenceForbidden as exc:
        raise XMLRejected(
            f"line {expat.CurrentLineNumber}: external entity '{exc.sysid}' is not accepted"
        ) from None
    except ET.ParseError as exc:
        raise XMLRejected(f"not well-formed XML: {exc}") from None
    except LookupError as exc:  # <?xml encoding="..."?> naming no codec Python has
        raise XMLRejected(f"the XML declaration names an unknown encoding ({str(exc)[:80]})") from None
    except ValueError as exc:  # expat reads single-byte encodings and UTF-8/16 only
        declared = _DECLARED_ENCODING.search(document[:200])
        name = declared.group(1).decode("ascii", "replace") if declared else "?"
        raise XMLRejected(f"encoding: '{name}' cannot be read ({exc}); expected UTF-8, UTF-16 "
                          "or ISO-8859-1") from None
    except RecursionError:  # defensive: the depth bound should make this unreachable
        raise XMLRejected(f"elements nest deeper than {max_depth} levels") from None
    soap = builder.root_namespace if builder.root_namespace in SOAP_NAMESPACES else None
    namespace = builder.root_namespace
    if soap is not None:
        if root.tag != "Envelope":
            raise XMLRejected(f"SOAP element '{root.tag}' is not an Envelope")
        body = root.find("Body")
        payload = next(iter(body), None) if body is not None else None
        if payload is None:
            raise XMLRejected("the SOAP Envelope has no Body element with a message in it")
        root = payload
        namespace = ""  # the payload's own namespace was stripped; callers answer in theirs
    return Document(root, namespace, soap)


def children(element: ET.Element, name: str, path: str) -> Iterator[tuple[ET.Element, str]]:
    """The children named `name`, each with its XPath-like location (`Name[2]`, 1-based)."""
    prefix = f"{path}/" if path else ""
    for index, child in enumerate(element.findall(name), start=1):
        yield child, f"{prefix}{name}[{index}]"


def to_bytes(root: ET.Element, soap_namespace: str | None = None) -> bytes:
    """Serialize a response, inside a SOAP envelope when the request came in one."""
    if soap_namespace is not None:
        envelope = ET.Element(f"{{{soap_namespace}}}Envelope")
        ET.SubElement(envelope, f"{{{soap_namespace}}}Body").append(root)
        root = envelope
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
