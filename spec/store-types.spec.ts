// Typed claims: TokenStore<Claims> types what issue() takes and what issue(), verify()
// and list() give back. The @ts-expect-error lines fail `npm run typecheck` if the
// types stop refusing them.
import { expect } from 'chai';
import { TokenStore } from '../lib/index.js';
import { SECRET, useRedis } from './support/fixture.js';

interface AppClaims {
  tenant: string;
  roles: string[];
}

describe('TokenStore<Claims>', () => {
  const fx = useRedis();

  it('types the extra claims on issue, verify and list', async () => {
    const store = new TokenStore<AppClaims>({ redis: fx.redis, key: SECRET, issuer: 'https://issuer.test', prefix: `typed${Date.now()}:` });
    try {
      const issued = await store.issue('alice', { claims: { tenant: 't1', roles: ['admin'] } });
      const tenant: string = issued.claims.tenant;
      const verified = await store.verify(issued.token);
      const roles: string[] = verified.claims.roles;
      const listed = await store.list('alice');
      const listedTenant: string | undefined = listed[0]?.claims.tenant;
      expect([tenant, roles, listedTenant, verified.claims.sub, verified.claims.exp - verified.claims.iat]).to.deep.equal(['t1', ['admin'], 't1', 'alice', 900]);

      // @ts-expect-error tenant must be a string
      const wrongType = () => store.issue('bob', { claims: { tenant: 1, roles: [] } });
      // @ts-expect-error roles is required by AppClaims
      const missing = () => store.issue('bob', { claims: { tenant: 't2' } });
      // @ts-expect-error tenant is a string, not a number
      const unknown = (v: typeof verified): number => v.claims.tenant;
      expect([typeof wrongType, typeof missing, typeof unknown]).to.deep.equal(['function', 'function', 'function']);
    } finally {
      await store.close();
    }
  });

  it('without a type argument, extra claims are a plain record', async () => {
    const store = fx.store();
    const { token } = await store.issue('alice', { claims: { anything: { nested: true } } });
    const verified = await store.verify(token);
    expect(verified.claims.anything).to.deep.equal({ nested: true });
  });
});
