// GET /distribution/{name}/json (docker-py's inspect_distribution / get_registry_data): the
// descriptor of what a reference names in its registry, and the platforms it offers: an index's
// entries, or the os/architecture of a single image's config. Nothing is stored.
import type { AuthConfig } from './authconfig';
import { RemoteRepository, type RegistryClient } from './client';
import { translatePullError } from './pull';
import { parseNormalizedNamed } from '../images/reference';
import { MediaTypes, type Index } from '../images/types';

const CONFIG_LIMIT = 16 << 20;

export interface DistributionInspect {
  Descriptor: { mediaType: string; digest: string; size: number };
  Platforms: Record<string, unknown>[];
}

/** The platform fields of an OCI platform object, or of an image config (same key names). */
function platformOf(doc: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const k of ['architecture', 'os', 'os.version', 'os.features', 'variant']) {
    if (doc[k] !== undefined && doc[k] !== '') out[k] = doc[k];
  }
  return out.os || out.architecture ? out : undefined;
}

export async function inspectDistribution(client: RegistryClient, name: string, auth: AuthConfig | undefined, signal?: AbortSignal): Promise<DistributionInspect> {
  const ref = parseNormalizedNamed(name);
  const endpoints = client.endpoints(ref.domain);
  let lastErr: unknown;
  for (const ep of endpoints) {
    try {
      const session = await client.session(ep, auth, [`repository:${ref.path}:pull`], signal);
      const repo = new RemoteRepository(session, ref.path);
      const top = await repo.getManifest(ref.digest ?? ref.tag!, signal);
      const out: DistributionInspect = { Descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length }, Platforms: [] };
      const doc = JSON.parse(top.bytes.toString('utf8')) as Record<string, unknown>;
      if (top.mediaType === MediaTypes.ociIndex || top.mediaType === MediaTypes.dockerManifestList) {
        for (const m of (doc as unknown as Index).manifests ?? []) {
          const p = m.platform ? platformOf(m.platform as unknown as Record<string, unknown>) : undefined;
          if (p) out.Platforms.push(p);
        }
      } else {
        // As dockerd: the config's platform when it can be read, else no platform.
        const cfgDigest = (doc.config as { digest?: string } | undefined)?.digest;
        if (cfgDigest) {
          try {
            const p = platformOf(JSON.parse((await repo.fetchBlob(cfgDigest, CONFIG_LIMIT, signal)).toString('utf8')) as Record<string, unknown>);
            if (p) out.Platforms.push(p);
          } catch {}
        }
      }
      return out;
    } catch (err) {
      lastErr = translatePullError(err, ref);
      if (!ep.mirror) break;
    }
  }
  throw lastErr;
}
