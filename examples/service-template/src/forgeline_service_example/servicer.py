"""forgeline_service_example.v1.WordCountService over gRPC: translates messages to the counting
functions and back. forgeline's kernel does the rest: the server, health, reflection, errors,
auth, the Operations and Event services, plugin loading, and the handler of BuildVocabulary."""

from __future__ import annotations

import asyncio

from forgeline.contracts.cleaners import CleanContext
from forgeline.convert import from_struct
from forgeline.errors import InvalidArgument
from forgeline.operations import MethodSpec, OperationContext
from forgeline.registry import PluginChoice
from forgeline.server import Kernel, ServiceDefinition

from forgeline_service_example.counting import count_words, vocabulary
from forgeline_service_example.v1 import wordcount_service_pb2 as pb
from forgeline_service_example.v1 import wordcount_service_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["WordCountService"].full_name
DEFAULT_TOP_K = 10


def build(kernel: Kernel) -> list[ServiceDefinition]:
    """What ``forgeline serve wordcount`` hosts (named by the entry point's ServiceSpec)."""
    servicer = WordCountServicer(kernel)
    return [
        ServiceDefinition(
            full_name=SERVICE,
            servicer=servicer,
            add_to_server=wordcount_service_pb2_grpc.add_WordCountServiceServicer_to_server,
            methods=servicer.long_running(),
        )
    ]


class WordCountServicer(wordcount_service_pb2_grpc.WordCountServiceServicer):
    def __init__(self, kernel: Kernel) -> None:
        self._registry = kernel.registry
        self._max_texts = kernel.settings.max_predict_texts

    def _check_size(self, texts) -> None:
        if len(texts) > self._max_texts:
            raise InvalidArgument.for_field(
                "texts",
                f"{len(texts)} texts is over the limit of {self._max_texts} per call "
                "(FORGELINE_MAX_PREDICT_TEXTS)",
            )

    # --- long-running methods: declared once, by their name in the proto -----------------------
    def long_running(self) -> list[MethodSpec]:
        def check(r: pb.BuildVocabularyRequest) -> None:
            self._check_size(r.texts)
            if r.top_k < 0:
                raise InvalidArgument.for_field("top_k", f"must be >= 0, got {r.top_k}")

        def build_vocabulary(
            r: pb.BuildVocabularyRequest, ctx: OperationContext
        ) -> pb.BuildVocabularyResponse:
            ranked, distinct = vocabulary(list(r.texts), r.top_k or DEFAULT_TOP_K, ctx.progress)
            return pb.BuildVocabularyResponse(
                words=[pb.WordCount(word=w, count=c) for w, c in ranked], distinct_words=distinct
            )

        # Runs in a worker thread, survives a restart (re-run from the stored request), and
        # answers GetOperation/WaitOperation/StreamEvents: all the kernel's doing.
        return [MethodSpec("BuildVocabulary", build_vocabulary, validate=check)]

    # --- quick methods: plain gRPC handlers ------------------------------------------------------
    async def CountWords(self, request, context):
        self._check_size(request.texts)
        cleaners = self._registry.create_all(
            "cleaners",
            [PluginChoice(c.name, from_struct(c.config)) for c in request.cleaners],
            "cleaners",
        )
        # Blocking work runs off the event loop.
        texts, counts = await asyncio.to_thread(
            count_words, list(request.texts), cleaners, CleanContext(registry=self._registry)
        )
        return pb.CountWordsResponse(texts=texts, counts=counts, total=sum(counts))
