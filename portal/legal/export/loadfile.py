"""``load_file.xml``: an EDRM-XML style load file listing every document with its hash and metadata.

Written document by document with ``xml.etree`` (so hostile text in metadata is escaped), characters
XML 1.0 forbids even escaped are replaced. Review platforms import it to index the package.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # we only build XML, never parse untrusted input
from collections.abc import Iterable
from typing import Any

from portal.legal.export.zipwriter import FileEntry

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(value: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(value))


def _tag(parent: ET.Element, name: str, value: object, data_type: str = "Text") -> None:
    ET.SubElement(parent, "Tag", {"TagName": name, "TagDataType": data_type, "TagValue": _clean(value)})


def write_load_file(
    out: Any, *, package_id: str, matter: str, custodian: str, entries: Iterable[FileEntry]
) -> None:
    """Stream the load file for ``entries`` into ``out`` (a binary writer)."""
    out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root_open = ET.tostring(
        ET.Element(
            "Root",
            {
                "MajorVersion": "1",
                "MinorVersion": "2",
                "Description": _clean(f"Concordance export {package_id}"),
                "Locale": "en-US",
                "DataInterchangeType": "Update",
            },
        ),
        encoding="unicode",
        short_empty_elements=False,
    )
    out.write(root_open.removesuffix("</Root>").encode())
    batch = ET.Element("Batch", {"name": _clean(package_id)})
    tags = ET.SubElement(batch, "Tags")
    _tag(tags, "Matter", matter)
    _tag(tags, "Custodian", custodian)
    out.write(
        b"\n"
        + ET.tostring(batch, encoding="unicode", short_empty_elements=False).removesuffix("</Batch>").encode()
    )
    out.write(b"\n<Documents>\n")
    for n, entry in enumerate(entries, 1):
        doc = ET.Element(
            "Document", {"DocID": f"DOC-{n:06d}", "DocType": "File", "MimeType": entry.media_type}
        )
        doc_tags = ET.SubElement(doc, "Tags")
        _tag(doc_tags, "#Hash", entry.sha256)
        _tag(doc_tags, "#HashType", "SHA256")
        _tag(doc_tags, "#FileSize", entry.size, "Integer")
        _tag(doc_tags, "Custodian", custodian)
        for key, value in sorted(entry.metadata.items()):
            _tag(doc_tags, key, value)
        files = ET.SubElement(doc, "Files")
        file_el = ET.SubElement(files, "File", {"FileType": "Native"})
        folder, _, name = entry.path.rpartition("/")
        ET.SubElement(
            file_el,
            "ExternalFile",
            {
                "FilePath": _clean(folder),
                "FileName": _clean(name),
                "FileSize": str(entry.size),
                "Hash": entry.sha256,
                "HashType": "SHA256",
            },
        )
        out.write(ET.tostring(doc, encoding="utf-8", xml_declaration=False) + b"\n")
    out.write(b"</Documents>\n</Batch>\n</Root>\n")
