# One container: hamsrv with its embedded PostgreSQL in the /data volume.
# Stage 1 compiles the import fast path (hamsrv/ingest/_fastadi.c) into wheels; the image needs no compiler.
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY hamsrv ./hamsrv
COPY relay ./relay
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 hamsrv \
 && mkdir /data && chown hamsrv /data
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY web ./web

USER hamsrv
ENV HAMSRV_DATA_DIR=/data \
    HAMSRV_WEB_DIR=/app/web \
    HAMSRV_HTTP_BIND=0.0.0.0:8080 \
    HAMSRV_CLUSTER_BIND=0.0.0.0:7300 \
    XDG_RUNTIME_DIR=/tmp
VOLUME /data
EXPOSE 8080 7300
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"
CMD ["hamsrv", "serve"]
