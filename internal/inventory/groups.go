package inventory

// The groups the shipped plans and roles give a meaning to: an inventory
// names its hosts' parts in the site by putting them in these groups.
const (
	GroupCA           = "ca"           // the CA server (one)
	GroupCompilers    = "compilers"    // the puppetservers behind the load balancer
	GroupLoadBalancer = "loadbalancer" // HAProxy
	GroupPuppetDB     = "puppetdb"     // PuppetDB and its PostgreSQL
	GroupAgents       = "agents"       // the Puppet agents
)
