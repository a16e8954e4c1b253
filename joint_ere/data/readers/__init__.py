from joint_ere.data.readers.casrel_triples import CasRelTriplesReader
from joint_ere.data.readers.dataset_reader import DatasetReader, load_json_records, resolve_path
from joint_ere.data.readers.dygie import DygieReader
from joint_ere.data.readers.spert_json import SpertJsonReader

__all__ = ["CasRelTriplesReader", "DatasetReader", "DygieReader", "SpertJsonReader", "load_json_records",
           "resolve_path"]
