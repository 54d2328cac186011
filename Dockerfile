# metarisk: the service image. Python 3.11 from Debian bookworm; Node 20 for the demo profile's devnet (anvil and
# solc-js come from npm). The source keeps its layout under /app, reference_data/ (the recorded market) included.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir -e .
ENV PATH=/venv/bin:$PATH OPENBLAS_NUM_THREADS=1
EXPOSE 8080
CMD ["metarisk", "service", "/config/service.yaml", "--host", "0.0.0.0", "--port", "8080"]
