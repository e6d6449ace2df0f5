// One scheduled Container Apps Job that runs `python -m jobs <mode>` as the user-assigned identity.

@description('Azure region of the job.')
param location string

@description('Name of the job (lower-case letters, digits and hyphens, at most 32 characters).')
@maxLength(32)
param name string

@description('Which spindex run the job starts: `python -m jobs <mode>`.')
@allowed([
  'delta'
  'acl'
  'full'
])
param mode string

@description('When the job starts: a five-field cron expression, in UTC.')
param cronExpression string

@description('Seconds a run may take before its replica is stopped.')
@minValue(60)
param replicaTimeout int

@description('Times a failed run is retried before the execution counts as failed.')
@minValue(0)
param replicaRetryLimit int = 1

@description('Resource id of the Container Apps managed environment.')
param environmentId string

@description('Resource id of the user-assigned identity the job runs as.')
param identityId string

@description('Container image of spindex, e.g. myregistry.azurecr.io/spindex:0.1.0.')
param image string

@description('Login server of a registry pulled from with the identity; empty for a public image.')
param registryServer string = ''

@description('Environment variables of the container: spindex Settings (SPINDEX_...) and AZURE_CLIENT_ID.')
param env array

@description('Versionless Key Vault URL of the Graph certificate secret; empty when the job does not sign in with a certificate.')
param certificateSecretUrl string = ''

@description('Folder the Graph certificate is mounted in.')
param certificateMountPath string = '/mnt/secrets'

@description('File name of the mounted Graph certificate (PEM, private key and certificate).')
param certificateFileName string = 'graph-certificate.pem'

@description('CPU cores of the replica (a decimal, as a string).')
param cpu string = '1.0'

@description('Memory of the replica, e.g. 2Gi (Consumption profile: twice the cores, in Gi).')
param memory string = '2Gi'

@description('Tags applied to the job.')
param tags object = {}

var certificateSecretName = 'graph-certificate'
var certificateVolumeName = 'graph-certificate'
var mountsCertificate = !empty(certificateSecretUrl)

resource job 'Microsoft.App/jobs@2024-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Schedule'
      replicaTimeout: replicaTimeout
      replicaRetryLimit: replicaRetryLimit
      scheduleTriggerConfig: {
        cronExpression: cronExpression
        // One replica per execution; a Blob lease per drive keeps overlapping executions apart.
        parallelism: 1
        replicaCompletionCount: 1
      }
      secrets: mountsCertificate ? [
        {
          name: certificateSecretName
          keyVaultUrl: certificateSecretUrl
          identity: identityId
        }
      ] : []
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'spindex'
          image: image
          command: [
            'python'
            '-m'
            'jobs'
          ]
          args: [
            mode
          ]
          env: env
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          volumeMounts: mountsCertificate ? [
            {
              volumeName: certificateVolumeName
              mountPath: certificateMountPath
            }
          ] : []
        }
      ]
      volumes: mountsCertificate ? [
        {
          name: certificateVolumeName
          storageType: 'Secret'
          secrets: [
            {
              secretRef: certificateSecretName
              path: certificateFileName
            }
          ]
        }
      ] : []
    }
  }
}

@description('Name of the job.')
output name string = job.name

@description('Resource id of the job.')
output id string = job.id
