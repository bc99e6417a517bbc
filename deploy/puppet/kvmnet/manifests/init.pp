# kvmnet: the virtual networks of a KVM host, declared as kvmnet::network
# resources. Assumes kvmnet-agent is installed (deploy/install.sh or a package).
#
#   class { 'kvmnet': purge => true }
#   kvmnet::network { 'nat-network':
#     content => file('profile/kvmnet/nat-network.toml'),
#   }
class kvmnet (
  Boolean $purge = true,
) {
  file { ['/etc/kvmnet', '/etc/kvmnet/networks.d']:
    ensure => directory,
    mode   => '0755',
  }
  # With purge, files not declared as kvmnet::network are removed, and the
  # agent removes their networks.
  if $purge {
    File['/etc/kvmnet/networks.d'] {
      recurse => true,
      purge   => true,
    }
  }
  service { 'kvmnet-agent':
    ensure => running,
    enable => true,
  }
}
