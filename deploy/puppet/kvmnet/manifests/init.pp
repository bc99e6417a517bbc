# @summary The virtual networks of a KVM host, run by kvmnet-agent.
#
# Installs the kvmnet-agent package, manages its config directory and
# service, and declares a kvmnet::network for each entry of $networks.
# Network files are validated by the agent before they replace the old
# ones; a change reloads the agent (SIGHUP: a pass now), never restarts it.
#
# @example Networks as data (Hiera)
#   class { 'kvmnet':
#     networks => {
#       'nat-network' => {
#         'mode'   => 'nat',
#         'bridge' => { 'name' => 'virbr-nat' },
#         'ip'     => [{ 'address' => '192.168.10.1/24' }],
#       },
#     },
#   }
#
# @param networks
#   Networks by name, each a Hash in the kvmnet file format
#   (/usr/share/kvmnet/kvmnet.schema.json).
# @param purge
#   Remove network files not declared as kvmnet::network; the agent removes
#   their networks.
# @param manage_package
#   Install the kvmnet-agent package.
# @param package_ensure
#   The package's ensure (installed, latest, a version).
# @param manage_service
#   Enable and run the kvmnet-agent service and reload it on changes.
# @param binary
#   The agent binary used to validate the files.
# @param config_dir
#   The agent's config directory.
class kvmnet (
  Hash[String[1], Hash] $networks = {},
  Boolean $purge = true,
  Boolean $manage_package = true,
  String[1] $package_ensure = 'installed',
  Boolean $manage_service = true,
  Stdlib::Absolutepath $binary = '/usr/bin/kvmnet-agent',
  Stdlib::Absolutepath $config_dir = '/etc/kvmnet/networks.d',
) {
  if $manage_package {
    package { 'kvmnet-agent':
      ensure => $package_ensure,
      before => File[$config_dir],
    }
  }

  file { $config_dir:
    ensure  => directory,
    mode    => '0755',
    recurse => $purge,
    purge   => $purge,
  }

  if $manage_service {
    # The daemon follows file changes by itself; a reload makes the pass
    # immediate. A restart would be needless (and Puppet's default).
    service { 'kvmnet-agent':
      ensure     => running,
      enable     => true,
      hasrestart => true,
      restart    => '/bin/systemctl reload kvmnet-agent',
      subscribe  => File[$config_dir],
    }
  }

  $networks.each |String[1] $name, Hash $network| {
    kvmnet::network { $name:
      content => $network,
    }
  }
}
