from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Cleaner(_message.Message):
    __slots__ = ("name", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CountWordsRequest(_message.Message):
    __slots__ = ("texts", "cleaners")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    CLEANERS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    cleaners: _containers.RepeatedCompositeFieldContainer[Cleaner]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., cleaners: _Optional[_Iterable[_Union[Cleaner, _Mapping]]] = ...) -> None: ...

class CountWordsResponse(_message.Message):
    __slots__ = ("texts", "counts", "total")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.RepeatedScalarFieldContainer[int]
    total: int
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., counts: _Optional[_Iterable[int]] = ..., total: _Optional[int] = ...) -> None: ...

class BuildVocabularyRequest(_message.Message):
    __slots__ = ("texts", "top_k", "request_id")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    request_id: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class WordCount(_message.Message):
    __slots__ = ("word", "count")
    WORD_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    word: str
    count: int
    def __init__(self, word: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class BuildVocabularyResponse(_message.Message):
    __slots__ = ("words", "distinct_words")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_WORDS_FIELD_NUMBER: _ClassVar[int]
    words: _containers.RepeatedCompositeFieldContainer[WordCount]
    distinct_words: int
    def __init__(self, words: _Optional[_Iterable[_Union[WordCount, _Mapping]]] = ..., distinct_words: _Optional[int] = ...) -> None: ...
