"""Check a DCAT-AP JSON-LD export (api/tests/catalogue.rs).

Usage: dcat_ap_check.py EXPORT.jsonld SHAPES.ttl [SHAPES.ttl ...]

1. Validates the export against the official DCAT-AP SHACL shapes with pySHACL (the
   shapes and their range shapes, merged into one shapes graph), and checks that the
   same shapes refuse a copy of the export without the services' dcat:endpointURL (so a
   pass is not a vacuous one).
2. Reads each dcat:DataService the way data.gouv.fr's harvester (udata,
   dataservice_from_rdf) does: dct:title, dct:description, dcat:endpointURL,
   dcat:endpointDescription, dct:license, dct:issued, dct:modified, dcat:keyword, and the
   node's URI.

Prints one JSON object: {"conforms", "report", "mutantConforms", "services": [...]}.
"""

import datetime
import json
import sys

import pyshacl
import rdflib
from rdflib.namespace import DCAT, DCTERMS, RDF


def validate(data, shapes):
    conforms, _, text = pyshacl.validate(
        data, shacl_graph=shapes, inference="none", allow_warnings=True
    )
    return conforms, text


def is_datetime(v):
    return v is not None and isinstance(v.toPython(), datetime.datetime)


def main():
    export, shape_files = sys.argv[1], sys.argv[2:]
    shapes = rdflib.Graph()
    for f in shape_files:
        shapes.parse(f, format="turtle")
    data = rdflib.Graph().parse(export, format="json-ld")
    conforms, report = validate(data, shapes)
    mutant = rdflib.Graph()
    for t in data:
        mutant.add(t)
    mutant.remove((None, DCAT.endpointURL, None))
    mutant_conforms, _ = validate(mutant, shapes)
    services = []
    for node in data.subjects(RDF.type, DCAT.DataService):
        d = data.resource(node)

        def value(p):
            v = d.value(p)
            if v is None:
                return None
            v = v.identifier if isinstance(v, rdflib.resource.Resource) else v
            return v.toPython() if isinstance(v, rdflib.Literal) else str(v)

        issued = d.value(DCTERMS.issued)
        modified = d.value(DCTERMS.modified)
        services.append(
            {
                "uri": str(node) if isinstance(node, rdflib.URIRef) else None,
                "identifier": value(DCTERMS.identifier),
                "title": value(DCTERMS.title),
                "description": value(DCTERMS.description),
                "endpointURL": value(DCAT.endpointURL),
                "endpointDescription": value(DCAT.endpointDescription),
                "license": value(DCTERMS.license),
                # udata stores these as datetimes: they must parse as xsd:dateTime.
                "issued": issued.toPython().isoformat() if issued is not None else None,
                "issuedIsDateTime": is_datetime(issued),
                "modifiedIsDateTime": is_datetime(modified),
                "keywords": sorted(str(k) for k in data.objects(node, DCAT.keyword)),
            }
        )
    print(
        json.dumps(
            {
                "conforms": conforms,
                "report": report,
                "mutantConforms": mutant_conforms,
                "services": services,
            }
        )
    )


if __name__ == "__main__":
    main()
