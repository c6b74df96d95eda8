/** Upstream-shaped synapse configs the tests render and run. */

/** The article's synapse.conf.json as printed: the single-service form, a string port. */
export const ARTICLE_SYNAPSE_CONF = {
  service: {
    name: 'user-service',
    default_servers: [{ name: 'localhost', host: '127.0.0.1', port: '8080' }],
    discovery: { method: 'zookeeper', path: '/services/user-service', hosts: ['zk1.coolvds.net:2181', 'zk2.coolvds.net:2181'] },
    haproxy: { port: 3210, server_options: 'check inter 2s rise 3 fall 2', listen: ['mode http', 'option httpchk GET /health'] },
  },
};
