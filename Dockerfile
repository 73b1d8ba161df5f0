# usage-meter: one image for the server, the worker, the migration and the simulator
# (docker-compose.yml picks the command). The worker runs compiled (dist/), as with
# `npm run worker`; the server, migration and simulator run through tsx, as with npm start.
FROM node:20-bookworm-slim

WORKDIR /app
# Dependencies first (cached while only the sources change). The postinstall step
# generates the Prisma client, so it needs the schema and its script.
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts/prisma-generate.mjs ./scripts/
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund && npm cache clean --force

COPY . .
# The Prisma client for these sources, the compiled worker (dist/) and the dashboard bundle (dist-web/).
RUN npm run generate && npm run build && npm run build:web

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
USER node
EXPOSE 3000
CMD ["node", "--import", "tsx", "workers/server.ts"]
